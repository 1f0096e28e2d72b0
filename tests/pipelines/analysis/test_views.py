"""The analysis views hold exactly what the sandbox's truth implies, on DuckDB and PostgreSQL,
after a first load and after reruns with time passing."""

from __future__ import annotations

from typing import Any, Dict

from pipelines.run import load
from tests.helpers import API_KEY, epoch, views_truth


def _epochs(row: Dict[str, Any]) -> Dict[str, Any]:
    return {k: epoch(v) if k in ("created_at", "finished_at") else v for k, v in row.items()}


def _run(target, sandbox, **options):
    return load(api_key=API_KEY, base_url=sandbox.base_url, **target.load_options(), **options)


def assert_views_equal_truth(target, world, with_events: bool = True) -> None:
    with target.reading():
        curves = {
            (r["fine_tuning_job_id"], r["step"]): r
            for r in target.query("SELECT * FROM {dataset}.training_curves")
        }
        best = {
            r["fine_tuning_job_id"]: r
            for r in target.query("SELECT * FROM {dataset}.best_checkpoints")
        }
        summary = {r["id"]: _epochs(r) for r in target.query("SELECT * FROM {dataset}.job_summary")}
    assert curves == views_truth.training_curves(world, with_events)
    assert best == views_truth.best_checkpoints(world)
    assert summary == views_truth.job_summary(world, with_events)


def test_views_equal_truth_and_follow_reruns(target, sandbox, world):
    world.add_job(status="succeeded", checkpoints=3, method="reinforcement")
    summary = _run(target, sandbox)
    assert summary.views == [
        "training_curves",
        "best_checkpoints",
        "job_summary",
        "training_files",
        "model_lifecycle",
        "training_messages",
    ]
    truth = views_truth.best_checkpoints(world)
    assert {r["rule"] for r in truth.values()} >= {"valid_reward_mean", "full_valid_loss"}
    assert_views_equal_truth(target, world)

    world.advance(seconds=3600, new_checkpoints=2)
    world.add_job(status="running", checkpoints=1)
    _run(target, sandbox)
    assert_views_equal_truth(target, world)

    world.finish_running_jobs()
    _run(target, sandbox)
    assert_views_equal_truth(target, world)


def test_views_exist_with_no_data_and_take_shape_later(target, tmp_path):
    from fake_openai import FineTuningWorld, SandboxServer

    world = FineTuningWorld(seed=2, jobs=0)
    with SandboxServer(world, api_key=API_KEY) as sandbox:
        _run(target, sandbox)
        for view in ("training_curves", "best_checkpoints", "job_summary"):
            assert target.query(f"SELECT * FROM {{dataset}}.{view}") == []
        world.add_job(status="succeeded", checkpoints=2, method="reinforcement")
        world.add_job(status="succeeded", checkpoints=2)
        _run(target, sandbox, resources=["jobs", "checkpoints"])  # no step tables yet
        assert target.query("SELECT * FROM {dataset}.training_curves") == []
        summary = {r["id"]: _epochs(r) for r in target.query("SELECT * FROM {dataset}.job_summary")}
        expected = views_truth.job_summary(world)
        for row in expected.values():
            row.update(steps=None, final_train_loss=None, final_valid_loss=None)
        assert summary == expected
        # the results CSVs alone: every step comes from them
        _run(target, sandbox, resources=["results"])
        assert_views_equal_truth(target, world, with_events=False)
        curves = target.query("SELECT DISTINCT source FROM {dataset}.training_curves")
        assert curves == [{"source": "results"}]
        # then the events: they win where both have a value
        _run(target, sandbox)
        assert_views_equal_truth(target, world)


def _view_ids(target) -> Dict[str, int]:
    """Each view's object id: a view dropped and created again gets a new one."""
    if target.name == "duckdb":
        sql = (
            "SELECT view_name AS name, view_oid AS oid FROM duckdb_views()"
            f" WHERE schema_name = '{target.dataset}'"
        )
    else:
        sql = (
            "SELECT c.relname AS name, CAST(c.oid AS BIGINT) AS oid FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            f" WHERE n.nspname = '{target.dataset}' AND c.relkind = 'v'"
        )
    return {r["name"]: r["oid"] for r in target.query(sql)}


def test_views_are_made_again_only_when_the_columns_change(target, sandbox, world):
    some = {"resources": ["jobs", "checkpoints"]}
    first = _run(target, sandbox, **some)
    made = _view_ids(target)
    assert sorted(made) == sorted(first.views)

    world.advance(seconds=3600, new_checkpoints=2)  # new rows, no new column
    assert _run(target, sandbox, **some).views == first.views  # the same views, untouched
    assert _view_ids(target) == made

    # events, files and the rest bring their tables: every view is made again
    _run(target, sandbox)
    remade = _view_ids(target)
    assert sorted(remade) == sorted(made)
    assert all(remade[name] != made[name] for name in made)
    assert_views_equal_truth(target, world)

    # a view dropped by hand is made again by the next run, even with nothing new
    with target.reading():
        target.client.execute_sql(
            f"DROP VIEW {target.client.make_qualified_table_name('job_summary')}"
        )
    _run(target, sandbox)
    assert sorted(_view_ids(target)) == sorted(made)
    assert_views_equal_truth(target, world)
