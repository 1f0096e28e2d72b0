"""A first load holds exactly the sandbox's truth, typed as documented."""

from __future__ import annotations

import dlt
import duckdb

from fake_openai import FineTuningWorld, SandboxServer
from sources.openai_fine_tuning import openai_fine_tuning
from tests.conftest import (
    API_KEY,
    DATASET,
    Loader,
    assert_checkpoints_equal_truth,
    assert_jobs_equal_truth,
)


def test_full_load_equals_sandbox_truth(loader, world):
    summary = loader.run()

    assert_checkpoints_equal_truth(loader, world)
    assert_jobs_equal_truth(loader, world)
    assert summary.rows == {"jobs": 12, "checkpoints": len(world.truth_checkpoints())}
    assert summary.jobs_seen == 12
    # page_size 100: one job-list page, one checkpoints page per job
    assert loader.sandbox.stats.by_route == {
        "GET /v1/fine_tuning/jobs": 1,
        "GET /v1/fine_tuning/jobs/{id}/checkpoints": 12,
    }
    assert summary.requests == 13


def test_column_types(loader):
    loader.run()
    with duckdb.connect(str(loader.duckdb_path), read_only=True) as con:
        types = dict(
            con.execute(
                "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns"
                f" WHERE table_schema = '{DATASET}' AND table_name IN ('jobs', 'checkpoints')"
            ).fetchall()
        )
    assert types["checkpoints.created_at"] == "TIMESTAMP WITH TIME ZONE"
    assert types["checkpoints.step_number"] == "BIGINT"
    for metric in ("step", "train_loss", "valid_loss", "full_valid_mean_token_accuracy"):
        assert types[f"checkpoints.metrics__{metric}"] == "DOUBLE"
    for name in ("created_at", "finished_at", "estimated_finish"):
        assert types[f"jobs.{name}"] == "TIMESTAMP WITH TIME ZONE"
    assert types["jobs.hyperparameters"] == "JSON"
    assert not [c for c in types if "__v_" in c], "no variant columns"


def test_metrics_null_where_absent_or_null(tmp_path):
    world = FineTuningWorld(seed=11, jobs=12, max_checkpoints=8, null_metrics=True)
    with SandboxServer(world, api_key=API_KEY) as sandbox:
        loader = Loader(sandbox, tmp_path)
        loader.run()
    rows = {r["id"]: r for r in loader.rows("checkpoints")}
    without_validation = [c for c in world.truth_checkpoints() if "valid_loss" not in c["metrics"]]
    null_full = [
        c for c in world.truth_checkpoints() if c["metrics"].get("full_valid_loss", 0) is None
    ]
    assert without_validation and null_full  # the data has both cases
    for checkpoint in without_validation:
        row = rows[checkpoint["id"]]
        assert row["metrics__valid_loss"] is None and row["metrics__full_valid_loss"] is None
    for checkpoint in null_full:
        assert rows[checkpoint["id"]]["metrics__full_valid_loss"] is None


def test_multi_page_jobs_and_equal_created_at_across_page_boundary(tmp_path):
    world = FineTuningWorld(seed=5, jobs=4, max_checkpoints=2)
    job = world.add_job(status="running", checkpoints=0)
    # 7 checkpoints: pages of 3 split the three that share one second (positions 3, 4, 5)
    for at in (100, 200, 300, 300, 300, 400, 500):
        world.add_checkpoint(job["id"], created_at=world.now + at)
    with SandboxServer(world, api_key=API_KEY) as sandbox:
        loader = Loader(sandbox, tmp_path)
        loader.run(page_size=3)
        assert_checkpoints_equal_truth(loader, world)
        assert sandbox.stats.by_path[f"/v1/fine_tuning/jobs/{job['id']}/checkpoints"] == 3
        # a new checkpoint in the same second as the newest loaded one is still loaded
        world.add_checkpoint(job["id"], created_at=world.now + 500)
        summary = loader.run(page_size=3)
        assert summary.rows["checkpoints"] == 1
        assert_checkpoints_equal_truth(loader, world)


def test_python_api_pipeline_run(sandbox, world, tmp_path):
    pipeline = dlt.pipeline(
        "py_api",
        destination=dlt.destinations.duckdb(str(tmp_path / "py.duckdb")),
        dataset_name=DATASET,
        pipelines_dir=str(tmp_path / "pl"),
    )
    info = pipeline.run(openai_fine_tuning(api_key=API_KEY, base_url=sandbox.base_url))
    assert not info.has_failed_jobs
    with duckdb.connect(str(tmp_path / "py.duckdb"), read_only=True) as con:
        ids = {r[0] for r in con.execute(f"SELECT id FROM {DATASET}.checkpoints").fetchall()}
        jobs = con.execute(f"SELECT count(*) FROM {DATASET}.jobs").fetchone()[0]
    assert ids == {c["id"] for c in world.truth_checkpoints()}
    assert jobs == 12


def test_with_resources_checkpoints_only(sandbox, world, tmp_path):
    pipeline = dlt.pipeline(
        "only_ckpt",
        destination=dlt.destinations.duckdb(str(tmp_path / "o.duckdb")),
        dataset_name=DATASET,
        pipelines_dir=str(tmp_path / "pl"),
    )
    source = openai_fine_tuning(api_key=API_KEY, base_url=sandbox.base_url)
    pipeline.run(source.with_resources("checkpoints"))
    with duckdb.connect(str(tmp_path / "o.duckdb"), read_only=True) as con:
        tables = {
            r[0]
            for r in con.execute(
                f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{DATASET}'"
            ).fetchall()
        }
        count = con.execute(f"SELECT count(*) FROM {DATASET}.checkpoints").fetchone()[0]
    assert "jobs" not in tables
    assert count == len(world.truth_checkpoints())


def test_empty_organization_creates_both_tables(tmp_path):
    world = FineTuningWorld(seed=1, jobs=0)
    with SandboxServer(world, api_key=API_KEY) as sandbox:
        loader = Loader(sandbox, tmp_path)
        summary = loader.run()
        assert summary.rows == {"jobs": 0, "checkpoints": 0}
        assert (loader.count("jobs"), loader.count("checkpoints")) == (0, 0)
        world.add_job(status="running", checkpoints=2)
        assert loader.run().rows == {"jobs": 1, "checkpoints": 2}
        assert_checkpoints_equal_truth(loader, world)
