"""A first load holds exactly the sandbox's truth, typed as documented."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pytest

from fake_openai import FineTuningWorld, SandboxServer
from pipelines.run import TABLES, make_pipeline
from pipelines.run.loader import PARALLEL_NORMALIZE_BYTES, normalize_workers
from sources.openai_fine_tuning import openai_fine_tuning
from tests.helpers import (
    API_KEY,
    DATASET,
    LONG_JOB,
    Loader,
    assert_checkpoints_equal_truth,
    assert_history_equal_truth,
    first_load_routes,
    no_change_rows,
    python_pipeline,
    referenced_file_ids,
    training_lines,
)


@pytest.mark.parametrize("world", [LONG_JOB], indirect=True)
def test_full_load_equals_sandbox_truth(loader, world):
    summary = loader.run()

    assert_history_equal_truth(loader, world)
    events = [e for job_events in world.truth_events().values() for e in job_events]
    metrics = [e for e in events if e.get("type") == "metrics"]
    graders = sum(len(e["data"].get("scores", {}).get("graders", ())) for e in metrics)
    assert graders > 0  # reinforcement jobs: per-grader scores, a table of their own
    assert summary.rows == {
        "jobs": 12,
        "checkpoints": len(world.truth_checkpoints()),
        "events": len(events),
        "step_metrics": len(metrics),
        "files": len(world.truth_files()),
        "results": len(world.truth_results()),
        "training_examples": training_lines(world),
        "models": len(world.truth_models()),
        "step_grader_scores": graders,
    }
    assert summary.jobs_seen == 12
    assert summary.missing_files == sorted(world.deleted_file_ids())
    # page_size 100: one job-list page, every page of every per-job list, each file once
    routes = first_load_routes(world)
    assert loader.sandbox.stats.by_route == routes
    assert routes["GET /v1/fine_tuning/jobs/{id}/events"] > 12 + 10  # a job of 10+ pages
    assert summary.requests == sum(routes.values())


def test_column_types(loader, world):
    world.add_job(status="succeeded", checkpoints=2, method="reinforcement")
    loader.run()
    with duckdb.connect(str(loader.duckdb_path), read_only=True) as con:
        types = dict(
            con.execute(
                "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns"
                f" WHERE table_schema = '{DATASET}' AND table_name NOT LIKE '_dlt%'"
            ).fetchall()
        )
    assert types["checkpoints.created_at"] == "TIMESTAMP WITH TIME ZONE"
    assert types["checkpoints.step_number"] == "BIGINT"
    for metric in ("step", "train_loss", "valid_loss", "full_valid_mean_token_accuracy"):
        assert types[f"checkpoints.metrics__{metric}"] == "DOUBLE"
    for name in ("created_at", "finished_at", "estimated_finish"):
        assert types[f"jobs.{name}"] == "TIMESTAMP WITH TIME ZONE"
    assert types["jobs.hyperparameters"] == "JSON"
    assert types["events.created_at"] == "TIMESTAMP WITH TIME ZONE"
    assert types["events.data"] == "JSON"
    for name in ("id", "fine_tuning_job_id", "level", "type", "message"):
        assert types[f"events.{name}"] == "VARCHAR"
    assert types["step_metrics.created_at"] == "TIMESTAMP WITH TIME ZONE"
    assert types["step_metrics.step"] == types["step_metrics.total_steps"] == "BIGINT"
    for metric in (
        "train_loss",
        "valid_mean_token_accuracy",
        "full_valid_loss",
        "scores__train_reward_mean",
        "usage__grader_prompt_tokens",  # an integer in the API, a DOUBLE column
        "timing__step_seconds",
    ):
        assert types[f"step_metrics.{metric}"] == "DOUBLE", metric
    assert types["step_grader_scores.train_reward_mean"] == "DOUBLE"
    assert types["step_grader_scores.name"] == "VARCHAR"
    assert types["step_grader_scores.position"] == types["step_grader_scores.step"] == "BIGINT"
    assert types["files.created_at"] == types["files.expires_at"] == "TIMESTAMP WITH TIME ZONE"
    assert types["files.bytes"] == "BIGINT"
    assert types["results.step"] == "BIGINT"
    for name in ("train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy"):
        assert types[f"results.{name}"] == "DOUBLE"
    assert types["results.train_reward_mean"] == "DOUBLE"  # an extra column of RFT results
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
    pipeline = python_pipeline(tmp_path, "py_api", "py.duckdb")
    info = pipeline.run(openai_fine_tuning(api_key=API_KEY, base_url=sandbox.base_url))
    assert not info.has_failed_jobs
    with duckdb.connect(str(tmp_path / "py.duckdb"), read_only=True) as con:
        ids = {r[0] for r in con.execute(f"SELECT id FROM {DATASET}.checkpoints").fetchall()}
        jobs = con.execute(f"SELECT count(*) FROM {DATASET}.jobs").fetchone()[0]
    assert ids == {c["id"] for c in world.truth_checkpoints()}
    assert jobs == 12


ARROW_TABLES = ("checkpoints", "events", "step_metrics", "step_grader_scores", "results", "models")


def test_arrow_files_follow_the_schema_so_normalize_imports_them_and_rows_carry_the_load_id(
    sandbox, world, tmp_path
):
    """Columns learned after a table's first item (the reinforcement jobs' metrics) come after
    `_dlt_load_id` in dlt's schema; each extracted file must list its columns in that order,
    or dlt's normalize rewrites the file instead of importing it."""
    import pyarrow.parquet as pq

    pipeline = python_pipeline(tmp_path, "arrow_order", "a.duckdb")
    pipeline.extract(openai_fine_tuning(api_key=API_KEY, base_url=sandbox.base_url))
    (load_id,) = pipeline.list_extracted_load_packages()
    schema = pipeline.default_schema
    new_jobs = Path(pipeline.working_dir, "normalize", "extracted", load_id, "new_jobs")
    files = {
        f.name.split(".")[0]: f for f in new_jobs.glob("*.parquet") if pq.read_metadata(f).num_rows
    }
    assert sorted(files) == sorted(ARROW_TABLES + ("training_examples",))
    learned_late = list(schema.get_table_columns("checkpoints"))
    assert learned_late.index("metrics__train_reward_mean") > learned_late.index("_dlt_load_id")
    for table, path in files.items():
        assert pq.read_schema(path).names == list(schema.get_table_columns(table)), table

    pipeline.normalize()
    pipeline.load()
    with duckdb.connect(str(tmp_path / "a.duckdb"), read_only=True) as con:
        for table in (*ARROW_TABLES, "training_examples"):
            load_ids = con.execute(
                f"SELECT DISTINCT _dlt_load_id FROM {DATASET}.{table}"
            ).fetchall()
            assert load_ids == [(load_id,)], table


def test_with_resources_checkpoints_only(sandbox, world, tmp_path):
    pipeline = python_pipeline(tmp_path, "only_ckpt", "o.duckdb")
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


def test_empty_organization_creates_every_table(tmp_path):
    world = FineTuningWorld(seed=1, jobs=0)
    with SandboxServer(world, api_key=API_KEY) as sandbox:
        loader = Loader(sandbox, tmp_path)
        summary = loader.run()
        assert summary.rows == no_change_rows(world)  # base models are listed all the same
        assert [loader.count(table) for table in TABLES] == [
            len(world.truth_models()) if table == "models" else 0 for table in TABLES
        ]
        job = world.add_job(status="running", checkpoints=2)
        second = loader.run()
        events = world.truth_events()[job["id"]]
        assert second.rows == {
            **no_change_rows(world),
            "training_examples": training_lines(world),
            "jobs": 1,
            "checkpoints": 2,
            "events": len(events),
            "step_metrics": sum(e.get("type") == "metrics" for e in events),
            "files": len(referenced_file_ids(world)),
        }
        assert_history_equal_truth(loader, world)


def test_normalize_forks_workers_only_for_a_large_extraction(tmp_path, monkeypatch):
    """Forking dlt's normalize pool costs more than a small extraction takes to normalize."""
    pipeline = make_pipeline(
        duckdb_path=str(tmp_path / "ft.duckdb"), pipelines_dir=str(tmp_path / "p")
    )
    new_jobs = Path(pipeline.working_dir) / "normalize" / "extracted" / "1795000000.1" / "new_jobs"
    new_jobs.mkdir(parents=True)
    assert normalize_workers(pipeline) == 1
    (new_jobs / "events.1.jsonl").write_bytes(b"x" * (PARALLEL_NORMALIZE_BYTES - 1))
    assert normalize_workers(pipeline) == 1
    (new_jobs / "checkpoints.2.jsonl").write_bytes(b"x")
    assert normalize_workers(pipeline) == min(2, os.cpu_count() or 1)
    monkeypatch.setenv("NORMALIZE__WORKERS", "1")  # dlt config decides when set
    assert normalize_workers(pipeline) == 1
    monkeypatch.setenv("NORMALIZE__WORKERS", "3")
    assert normalize_workers(pipeline) == 3
