"""The benchmark still runs end to end (tiny sizes; it asserts no timings, only that every
measurement happened and the report was written)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_bench_runs_and_writes_its_report(tmp_path):
    out = tmp_path / "RESULTS.md"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--jobs",
            "12",
            "--latency-ms",
            "0",
            "--big-job",
            "150",
            "--big-sizes",
            "300",
            "--many-jobs",
            "20",
            "--out",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = out.read_text()
    for row in (
        "| first load | this project |",
        "| first load | dlt rest_api |",
        "| first load | raw floor |",
        "| no-change rerun | this project |",
        "| dlt fixed overhead |",
        "| 1 job x 300 checkpoints |",
        "| 20 jobs x 3 checkpoints |",
    ):
        assert row in report, row
    # the same number of requests for everyone on a first load: the sandbox counted them
    first = [line.split(" | ")[3] for line in report.splitlines() if "| first load |" in line]
    assert len(set(first)) == 1 and int(first[0]) > 12
