"""One state per target: switching destination, DuckDB file, dataset or project and back keeps
every target exact, because each gets its own pipeline (and state) by default."""

from __future__ import annotations

import pytest

from pipelines.run import load
from tests.helpers import (
    API_KEY,
    DATASET,
    Loader,
    Target,
    assert_history_equal_truth,
)


def _advance(world) -> None:
    world.advance(seconds=3600, new_checkpoints=2)
    world.add_job(status="running", checkpoints=1)


@pytest.mark.postgres
def test_duckdb_postgres_duckdb(sandbox, world, tmp_path, postgres_dsn, monkeypatch):
    """The failure a new user hit: PostgreSQL once, then DuckDB again with the same pipelines
    dir, used to leave DuckDB short of checkpoints and with stale job statuses."""
    import uuid

    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", postgres_dsn)
    pipelines = str(tmp_path / "shared")
    duck = Target("duckdb", DATASET, tmp_path)
    pg = Target("postgres", f"ft_switch_{uuid.uuid4().hex[:10]}", tmp_path)
    names = set()
    try:
        for target in (duck, pg, duck, pg, duck):
            summary = load(
                api_key=API_KEY,
                base_url=sandbox.base_url,
                destination=target.name,
                dataset=target.dataset,
                duckdb_path=str(target.duckdb_path),
                pipelines_dir=pipelines,
            )
            names.add(summary.pipeline_name)
            assert_history_equal_truth(target, world)
            _advance(world)
        assert len(names) == 2  # one state per target
    finally:
        import psycopg2

        with psycopg2.connect(postgres_dsn) as connection, connection.cursor() as cursor:
            for schema in (pg.dataset, f"{pg.dataset}_staging"):
                cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_file_a_b_a_and_dataset_x_y_x(sandbox, world, tmp_path):
    pipelines = tmp_path / "shared"
    runs = [("a", "x"), ("b", "x"), ("a", "x"), ("a", "y"), ("a", "x"), ("b", "x")]
    names = {}
    for stem, dataset in runs:
        target = Target("duckdb", dataset, tmp_path, f"{stem}.duckdb")
        summary = load(
            api_key=API_KEY,
            base_url=sandbox.base_url,
            duckdb_path=str(target.duckdb_path),
            dataset=dataset,
            pipelines_dir=str(pipelines),
        )
        names[(stem, dataset)] = summary.pipeline_name
        assert_history_equal_truth(target, world)
        _advance(world)
    assert len(set(names.values())) == 3


def test_project_p_q_p(sandbox, world, tmp_path):
    sandbox.projects = {"proj_p", "proj_q"}
    names = []
    for project in ("proj_p", "proj_q", "proj_p"):
        target = Target("duckdb", DATASET, tmp_path, f"{project}.duckdb")
        summary = load(
            api_key=API_KEY,
            base_url=sandbox.base_url,
            project=project,
            duckdb_path=str(target.duckdb_path),
            pipelines_dir=str(tmp_path / "shared"),
        )
        names.append(summary.pipeline_name)
        assert_history_equal_truth(target, world)
        _advance(world)
    assert names[0] == names[2] != names[1]


def test_same_file_other_project_is_its_own_state(sandbox, world, tmp_path):
    """Project P and Q into one file: two states, each reads everything it has not seen;
    merged rows stay exact."""
    sandbox.projects = {"proj_p", "proj_q"}
    loader = Loader(sandbox, tmp_path)
    first = loader.run(project="proj_p")
    second = loader.run(project="proj_q")
    assert first.pipeline_name != second.pipeline_name
    assert second.requests == first.requests  # a full read: its state is its own
    assert_history_equal_truth(loader, world)


def test_a_named_pipeline_reused_for_another_target_is_refused(cli, sandbox, world, tmp_path):
    """With an explicit --pipeline-name, A, then B twice, then A would leave A short: the
    local state is B's, newer than the one A holds, so dlt keeps it. That run refuses. (B's
    first run starts clean: dlt drops a local state that its empty destination lacks.)"""
    args = ("--pipeline-name", "shared")
    a, b = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    assert cli(*args, duckdb_path=a)[0] == 0
    for _ in range(2):
        _advance(world)
        assert cli(*args, duckdb_path=b)[0] == 0
    sandbox.stats.reset()
    code, out, err = cli(*args, duckdb_path=a)
    assert code == 2 and out == ""
    assert err.startswith("openai-ft: error: This pipeline's state belongs to another target")
    assert f"(duckdb {b} dataset {DATASET} from {sandbox.base_url}" in err
    assert f"not duckdb {a} dataset {DATASET} from {sandbox.base_url}" in err
    assert err.endswith(
        ": give this target its own --pipeline-name or --pipelines-dir (or leave"
        " --pipeline-name unset: the default is per target)"
    )
    assert set(sandbox.stats.by_route) <= {"GET /v1/fine_tuning/jobs"}  # refused at once


def test_cli_pipeline_name_overrides(cli, tmp_path):
    code, out, _ = cli("--pipeline-name", "nightly")
    assert code == 0 and f"  pipeline nightly in {tmp_path / 'pipelines'}" in out
    assert (tmp_path / "pipelines" / "nightly").is_dir()


@pytest.mark.parametrize("destination", ["duckdb", "postgres"])
def test_capabilities_are_worked_out_once_and_handed_out_as_copies(
    destination, tmp_path, monkeypatch
):
    """dlt asks a dozen times a run; each ask gets the same answer as a copy of its own (dlt
    sets file formats on what it gets), and an answer for a configuration is not the kept one."""
    from dlt.common.configuration.resolve import resolve_configuration

    from pipelines.run import make_pipeline

    monkeypatch.setenv(
        "DESTINATION__POSTGRES__CREDENTIALS", "postgresql://user:secret@127.0.0.1:1/db"
    )
    pipeline = make_pipeline(destination, duckdb_path=str(tmp_path / "ft.duckdb"))
    target = pipeline.destination
    resolved = []
    resolve = target.configuration
    monkeypatch.setattr(
        target, "configuration", lambda *a, **k: resolved.append(1) or resolve(*a, **k)
    )
    first, again = target.capabilities(), target.capabilities()
    assert len(resolved) == 1
    assert first is not again
    assert first.supported_loader_file_formats == again.supported_loader_file_formats
    first.supported_loader_file_formats = ["nothing"]
    first.preferred_loader_file_format = "nothing"
    after = target.capabilities()
    assert after.supported_loader_file_formats == again.supported_loader_file_formats
    assert after.preferred_loader_file_format == again.preferred_loader_file_format != "nothing"
    configured = resolve_configuration(target.spec(), accept_partial=True)
    assert target.capabilities(configured) is not target.capabilities(configured)
