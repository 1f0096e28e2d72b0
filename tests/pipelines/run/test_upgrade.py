"""An archive written by version 0.1 takes the loads of this version: 0.1 (commit 86b847a,
checked out from this repository's history) loads the sandbox by its own `openai-ft load`;
this version then loads what came since into the same DuckDB file, with the same state.

0.1 loaded dict rows: `_dlt_id` NOT NULL and random, per-grader scores in dlt's child table
`step_metrics__scores__graders`, `training_examples` (Arrow) without `_dlt_id`. Every table
must still equal the sandbox's truth, the child table stays as 0.1 left it, and the grader
scores of steps loaded since are in `step_grader_scores` (docs/TABLES.md).
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.helpers import (
    API_KEY,
    REPO,
    RESOURCES,
    assert_history_equal_truth,
    assert_step_metrics_equal_truth,
)
from tests.helpers.truth import assert_events_equal_truth

VERSION_0_1 = "86b847a77e4dda2ac9feca1ed38540ec1fa3fe2c"
CHILD_TABLE = "step_metrics__scores__graders"


@pytest.fixture
def version_0_1(tmp_path: Path) -> Path:
    """0.1's code (sources, pipelines, .dlt), from this repository's history."""
    known = subprocess.run(
        ["git", "-C", str(REPO), "cat-file", "-e", f"{VERSION_0_1}^{{commit}}"],
        capture_output=True,
        check=False,
    )
    if known.returncode != 0:
        pytest.skip(f"this clone has no commit {VERSION_0_1[:7]} (a shallow clone?)")
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", VERSION_0_1, "sources", "pipelines", ".dlt"],
        capture_output=True,
        check=True,
    ).stdout
    checkout = tmp_path / "version_0_1"
    checkout.mkdir()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(checkout, filter="data")
    return checkout


def _columns(loader, table: str) -> set:
    rows = loader.query(
        "SELECT column_name FROM information_schema.columns"
        f" WHERE table_schema = '{{dataset}}' AND table_name = '{table}'"
    )
    return {row["column_name"] for row in rows}


def test_an_archive_of_version_0_1_takes_the_loads_of_this_version(loader, world, version_0_1):
    env = {**os.environ, "OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": loader.sandbox.base_url}
    old = subprocess.run(
        loader.command(), cwd=version_0_1, env=env, capture_output=True, text=True, check=False
    )
    assert old.returncode == 0, old.stderr
    with loader.reading():  # 0.1 wrote this file: its shapes are there
        assert "_dlt_id" not in _columns(loader, "training_examples")
        assert "step_grader_scores" not in {
            row["table_name"]
            for row in loader.query(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = '{dataset}'"
            )
        }
        old_graders = loader.rows(CHILD_TABLE, order="_dlt_parent_id, _dlt_list_idx")
        old_steps = {row["id"] for row in loader.rows("step_metrics")}
        old_examples = loader.count("training_examples")
    assert old_graders  # the world has reinforcement steps: 0.1 unnested their graders

    world.add_job(status="running", checkpoints=1, method="reinforcement")
    world.advance(seconds=3600, new_checkpoints=2)
    world.advance(seconds=3600, new_checkpoints=1, finish=True)
    loader.run()

    assert_history_equal_truth(loader, world, resources=[r for r in RESOURCES if r != "events"])
    with loader.reading():
        assert_events_equal_truth(loader, world)
        assert_step_metrics_equal_truth(loader, world, graders_elsewhere=old_steps)
        new_steps = {row["id"] for row in loader.rows("step_metrics")} - old_steps
        new_graders = {row["id"] for row in loader.rows("step_grader_scores")}
        assert new_graders and new_graders <= new_steps
        assert loader.rows(CHILD_TABLE, order="_dlt_parent_id, _dlt_list_idx") == old_graders
        # the row key: 0.1's dict rows have dlt's (random), its Arrow rows none, new rows ours
        without_key = {
            table: loader.query(
                f"SELECT count(*) AS n FROM {{dataset}}.{table} WHERE _dlt_id IS NULL"
            )[0]["n"]
            for table in ("checkpoints", "events", "step_metrics", "training_examples")
        }
    assert without_key == {
        "checkpoints": 0,
        "events": 0,
        "step_metrics": 0,
        "training_examples": old_examples,
    }
