"""Choosing resources: `--resources`, the `resources` config key and `with_resources()`."""

from __future__ import annotations

import duckdb
import pytest

from sources.openai_fine_tuning import openai_fine_tuning
from tests.helpers import (
    API_KEY,
    DATASET,
    assert_checkpoints_equal_truth,
    assert_history_equal_truth,
    assert_jobs_equal_truth,
    python_pipeline,
)

ALL = "jobs, checkpoints, events, files, results, training_data, models"


def _tables(path) -> set:
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?"
            " AND table_type = 'BASE TABLE'",
            [DATASET],
        ).fetchall()
    return {name for (name,) in rows if not name.startswith("_dlt")}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("evnts", f"Unknown resource 'evnts': choose from {ALL}"),
        ("jobs,step_metrics", f"Unknown resource 'step_metrics': choose from {ALL}"),
        (",", f"No resource: choose from {ALL}"),
    ],
)
def test_unknown_resource_is_a_configuration_error(cli, sandbox, value, message):
    code, out, err = cli("--resources", value)
    assert code == 2 and out == ""
    hint = (
        " (step_metrics is loaded with events)"
        if "step_metrics" in value
        else " (sources.openai_fine_tuning.resources or --resources)"
    )
    assert err == f"openai-ft: error: {message}{hint}"
    assert sandbox.stats.total == 0


def test_resources_flag_loads_only_those(cli, sandbox, world, tmp_path):
    code, out, err = cli("--resources", "jobs,checkpoints")
    assert code == 0, err
    assert _tables(tmp_path / "ft.duckdb") == {"jobs", "checkpoints"}
    assert set(sandbox.stats.by_route) == {
        "GET /v1/fine_tuning/jobs",
        "GET /v1/fine_tuning/jobs/{id}/checkpoints",
    }


def test_resources_config_key(cli, sandbox, world, tmp_path):
    code, _, err = cli(env={"SOURCES__OPENAI_FINE_TUNING__RESOURCES": '["jobs"]'})
    assert code == 0, err
    assert _tables(tmp_path / "ft.duckdb") == {"jobs"}
    assert sandbox.stats.by_route == {"GET /v1/fine_tuning/jobs": 1}


def test_checkpoints_alone_then_everything_loads_every_job(sandbox, world, tmp_path):
    """The README's Python example as a new user runs it: a job that finished while only
    `checkpoints` was selected must still reach `jobs` (and every other table) later."""
    pipeline = python_pipeline(tmp_path, "selection")
    source = openai_fine_tuning(api_key=API_KEY, base_url=sandbox.base_url)
    pipeline.run(source.with_resources("checkpoints"), loader_file_format="parquet")
    assert _tables(tmp_path / "ft.duckdb") == {"checkpoints"}

    world.advance(seconds=3600, new_checkpoints=1, finish=True)  # every job is final now
    pipeline.run(openai_fine_tuning(api_key=API_KEY, base_url=sandbox.base_url))

    from tests.helpers import Loader

    loader = Loader(sandbox, tmp_path)
    assert_jobs_equal_truth(loader, world)
    assert_checkpoints_equal_truth(loader, world)
    assert_history_equal_truth(loader, world)
