"""The benchmark still runs end to end (tiny sizes; it asserts no timings, only that every
measurement happened and the report was written)."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import REPO


def test_bench_runs_and_writes_its_report(tmp_path):
    out = tmp_path / "RESULTS.md"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            *("--jobs", "12", "--latency-ms", "0", "--big-job", "150", "--big-steps", "400"),
            *("--big-sizes", "300", "--event-sizes", "600", "--many-jobs", "20"),
            *("--rate-jobs", "6", "--rate-limit", "40", "--training-file-mb", "0.2", "2"),
            *("--out", str(out)),
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
        "| 1 job x 600 steps (events) |",
        "| 20 jobs x 3 checkpoints |",
        "| 6 jobs, 40 requests/s allowed |",
        "| report | openai-ft report, 12 jobs, 20 charts |",
        "| 10 jobs, one training file of 0.2 MB |",
        "| 10 jobs, one training file of 2 MB |",
        "| a 2 MB training file: peak RSS within 20% of a 0.2 MB one |",
    ):
        assert row in report, row
    training_rows = [line for line in report.splitlines() if "one training file of" in line]
    assert training_rows and not any("NOT EXACT" in line for line in training_rows)  # every line
    # this project and the floor make the same requests on a first load (training files and
    # the models list included) and on a rerun (the models list again): the sandbox counted
    # them (the rest_api peer reads the lists only)
    for case in ("| first load |", "| no-change rerun |"):
        counts = {
            line.split(" | ")[1]: int(line.split(" | ")[3])
            for line in report.splitlines()
            if line.startswith(case)
        }
        assert counts["this project"] == counts["raw floor"] > 12, (case, counts)
    # a single job's 0 ms cases have their floor, making the same requests, beside them
    for case in ("| 1 job x 300 checkpoints", "| 1 job x 600 steps (events)"):
        ours_row = next(line for line in report.splitlines() if line.startswith(case + " |"))
        floor_row = next(
            line
            for line in report.splitlines()
            if line.startswith(case + ": raw floor, at this project's rows |")
        )
        assert ours_row.split(" | ")[2] == floor_row.split(" | ")[2], (ours_row, floor_row)
    assert not any(
        line.startswith("| 20 jobs x 3 checkpoints: raw floor") for line in report.splitlines()
    )
    rate_row = next(line for line in report.splitlines() if "requests/s allowed |" in line)
    assert rate_row.rstrip(" |").endswith("yes"), rate_row  # the rate-limited load is exact
