"""The README's Python example runs as written (only the job id is a real one), against the
sandbox, and leaves the tables and views it promises."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import duckdb

from tests.helpers import API_KEY, DATASET, REPO

DLT_DATASET_ACCESS = """
print("jobs:", pipeline.dataset()("SELECT count(*) FROM jobs").fetchall()[0][0])
"""


def python_example() -> str:
    text = (REPO / "README.md").read_text()
    return re.search(r"### From Python\n\n```python\n(.*?)```", text, re.S).group(1)


def test_the_python_example_runs_as_written(sandbox, world, tmp_path):
    code = python_example()
    assert 'job_ids=["ftjob-abc"]' in code  # "your job ids": the one thing a reader changes
    job_id = world.job_ids()[0]
    env = {
        **os.environ,
        "OPENAI_BASE_URL": sandbox.base_url,
        "OPENAI_API_KEY": API_KEY,
        "DLT_DATA_DIR": str(tmp_path / "dlt"),  # dlt's pipelines dir, not the machine's
        "RUNTIME__LOG_LEVEL": "CRITICAL",
    }
    result = subprocess.run(
        # and what a dlt user does next: dlt's own dataset access on what was loaded
        [sys.executable, "-c", code.replace("ftjob-abc", job_id) + DLT_DATASET_ACCESS],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    with duckdb.connect(str(tmp_path / "openai_ft.duckdb"), read_only=True) as connection:
        jobs = connection.execute(f"SELECT count(*) FROM {DATASET}.jobs").fetchone()[0]
        views = {
            name
            for (name,) in connection.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = ?"
                " AND table_type = 'VIEW'",
                [DATASET],
            ).fetchall()
        }
    assert jobs == len(world.job_ids())
    assert result.stdout.splitlines()[-1] == f"jobs: {jobs}"
    assert views == {
        "job_summary",
        "best_checkpoints",
        "training_curves",
        "training_files",
        "training_messages",
        "model_lifecycle",
    }
