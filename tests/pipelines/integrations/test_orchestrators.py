"""Orchestrators: the Dagster assets materialized in-process against the sandbox, exactly; the
Airflow recipe and the GitHub Actions example checked (and the DAG run where Airflow is)."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from typing import Any, Dict

import pytest
import yaml

from fake_openai.faults import FaultPlan
from pipelines.run import TABLES
from tests.helpers import (
    API_KEY,
    DATASET,
    REPO,
    RESOURCES,
    TERMINAL,
    Loader,
    Target,
    assert_history_equal_truth,
    expected_rerun_requests,
)

ROOT = REPO
AIRFLOW_DAG = ROOT / "pipelines" / "integrations" / "airflow_dag.py"
WORKFLOW = ROOT / "docs" / "github-actions-load.yml"
PREFIX = "dlt_openai_fine_tuning_"
JOBS_ROUTE = "GET /v1/fine_tuning/jobs"

try:
    import dagster as dg
    from dagster_dlt import DagsterDltResource

    from pipelines.integrations.dagster_assets import build_assets, make_definitions

    NO_DAGSTER = ""
except ModuleNotFoundError as missing:  # the test extra installs them: CI must not skip
    if os.environ.get("CI"):
        raise
    NO_DAGSTER = f'{missing.name} is not installed: pip install -e ".[test]"'
needs_dagster = pytest.mark.skipif(bool(NO_DAGSTER), reason=NO_DAGSTER)
# dagster's pydantic v1 compatibility layer warns on every definition: not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:dagster_shared")


def _build(loader: Loader, **options: Any):
    options.setdefault("api_key", API_KEY)
    options.setdefault("base_url", loader.sandbox.base_url)
    return build_assets(
        duckdb_path=str(loader.duckdb_path), pipelines_dir=str(loader.pipelines_dir), **options
    )


def _materialize(assets: Any, **kwargs: Any) -> Dict[str, Dict[str, Any]]:
    """Materializes in-process; returns each asset's metadata, by asset key."""
    result = dg.materialize([assets], resources={"dlt": DagsterDltResource()}, **kwargs)
    assert result.success
    return {
        event.materialization.asset_key.to_user_string(): {
            name: getattr(value, "value", getattr(value, "data", value))
            for name, value in event.materialization.metadata.items()
        }
        for event in result.get_asset_materialization_events()
    }


def _tables(loader: Loader) -> set:
    """The data tables of the dataset (not dlt's own, not the views)."""
    rows = loader.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = '{dataset}'"
        " AND table_type = 'BASE TABLE'"
    )
    return {row["table_name"] for row in rows if not row["table_name"].startswith("_dlt")}


@needs_dagster
def test_assets_are_the_five_resources_of_one_target(loader, tmp_path):
    defs = make_definitions(
        duckdb_path=str(loader.duckdb_path),
        pipelines_dir=str(loader.pipelines_dir),
        api_key=API_KEY,
        base_url=loader.sandbox.base_url,
    )
    (assets,) = defs.assets
    keys = {key.to_user_string() for key in assets.keys}
    # the hidden `jobs_to_read` is no asset; its place upstream is the API
    assert keys == {PREFIX + name for name in RESOURCES}
    assert {dep.to_user_string() for deps in assets.asset_deps.values() for dep in deps} == {
        "openai_fine_tuning_api"
    }
    assert assets.can_subset
    (schedule,) = defs.schedules
    assert schedule.cron_schedule == "0 * * * *"
    assert defs.resources and isinstance(defs.resources["dlt"], DagsterDltResource)

    # one pipeline per target: another file is another name; a given name is kept
    name = _build(loader).pipeline_name
    assert re.fullmatch(r"openai_fine_tuning_[0-9a-f]{8}", name)
    other = build_assets(
        api_key=API_KEY,
        base_url=loader.sandbox.base_url,
        duckdb_path=str(tmp_path / "b.duckdb"),
        pipelines_dir=str(loader.pipelines_dir),
    )
    assert other.pipeline_name != name
    assert _build(loader, pipeline_name="mine").pipeline.pipeline_name == "mine"
    prefixed = _build(loader, key_prefix="team_a").assets
    assert {key.path[0] for key in prefixed.keys} == {"team_a"}


@needs_dagster
def test_materialize_equals_truth_and_reruns_add_only_what_is_new(loader, world):
    built = _build(loader)
    first = _materialize(built.assets)

    assert set(first) == {PREFIX + name for name in RESOURCES}
    assert_history_equal_truth(loader, world)
    # the views `openai-ft load` makes after the load: made here too
    assert first[PREFIX + "jobs"]["views"]
    assert loader.query("SELECT count(*) AS n FROM {dataset}.job_summary")[0]["n"] == len(
        world.truth_jobs()
    )
    assert first[PREFIX + "checkpoints"]["rows_loaded"] == len(world.truth_checkpoints())
    # each row once in the file: dlt's staging copy is emptied once loaded, as load() does
    staging = Target("duckdb", DATASET, loader.tmp_path)  # the loader's DuckDB file
    assert staging.staging_rows() == dict.fromkeys(TABLES, 0)

    before_jobs = {j["id"]: j for j in world.truth_jobs()}
    before_checkpoints = {c["id"] for c in world.truth_checkpoints()}
    before_events = {e["id"] for events in world.truth_events().values() for e in events}
    world.advance(seconds=3600, new_checkpoints=2)
    world.add_job(status="running", checkpoints=3)

    second = _materialize(built.assets)

    new_events = [e for evs in world.truth_events().values() for e in evs]
    new_events = [e for e in new_events if e["id"] not in before_events]
    changed_jobs = [j for j in world.truth_jobs() if before_jobs.get(j["id"]) != j]
    new_checkpoints = {c["id"] for c in world.truth_checkpoints()} - before_checkpoints
    assert new_checkpoints and changed_jobs
    # only what is new was extracted (dagster-dlt wiped the local state: it came back from
    # the destination), and the tables hold each row once
    assert second[PREFIX + "checkpoints"]["rows_by_table"] == {"checkpoints": len(new_checkpoints)}
    assert second[PREFIX + "jobs"]["rows_by_table"] == {"jobs": len(changed_jobs)}
    events = second[PREFIX + "events"]["rows_by_table"]
    assert events["events"] == len(new_events)
    assert events["step_metrics"] == sum(e.get("type") == "metrics" for e in new_events)
    assert_history_equal_truth(loader, world)

    # nothing changed: the request budget of a no-change rerun, and no row extracted
    settled = {j["id"] for j in world.truth_jobs() if j["status"] in TERMINAL}
    loader.sandbox.stats.reset()
    third = _materialize(built.assets)
    assert loader.sandbox.stats.by_route == expected_rerun_requests(world, 100, settled)
    # (the models list is read again and stamped with last_seen_at on every run)
    models = third.pop(PREFIX + "models")["rows_by_table"]
    assert models == {"models": len(world.truth_models())}
    assert all(not meta["rows_by_table"] for meta in third.values())
    assert_history_equal_truth(loader, world)


@needs_dagster
def test_a_subset_loads_its_tables_and_the_rest_follows(loader, world):
    built = _build(loader)
    checkpoints = dg.AssetKey(PREFIX + "checkpoints")

    assert set(_materialize(built.assets, selection=[checkpoints])) == {PREFIX + "checkpoints"}
    assert _tables(loader) == {"checkpoints"}
    assert_history_equal_truth(loader, world, resources=["checkpoints"])

    world.advance(seconds=3600, new_checkpoints=1)
    assert set(_materialize(built.assets)) == {PREFIX + name for name in RESOURCES}
    assert_history_equal_truth(loader, world)


@needs_dagster
def test_openai_ft_load_continues_where_dagster_stopped(loader, world):
    built = _build(loader)
    _materialize(built.assets)
    before = {c["id"] for c in world.truth_checkpoints()}
    world.advance(seconds=3600, new_checkpoints=2)

    summary = loader.run()

    # the CLI's default pipeline for this target is the Dagster assets' one: one state
    assert summary.pipeline_name == built.pipeline_name
    new = {c["id"] for c in world.truth_checkpoints()} - before
    assert new and summary.rows["checkpoints"] == len(new)
    assert_history_equal_truth(loader, world)


@needs_dagster
@pytest.mark.parametrize(
    ("failure", "attempts"),
    [("401", 1), ("500", 3)],  # a bad key is not retried; an upstream error is, twice
)
def test_job_retries_what_a_retry_can_fix(loader, failure, attempts):
    api_key = "sk-not-the-sandbox-key" if failure == "401" else API_KEY
    if failure == "500":
        loader.sandbox.faults = FaultPlan(rate=1.0, kinds=["500"], routes=["jobs"])
    defs = make_definitions(
        retries=2,
        retry_delay=0.0,
        duckdb_path=str(loader.duckdb_path),
        pipelines_dir=str(loader.pipelines_dir),
        api_key=api_key,
        base_url=loader.sandbox.base_url,
        max_attempts=1,  # the source's own retries would hide Dagster's
    )
    (job,) = [j for j in defs.resolve_all_job_defs() if not j.name.startswith("__")]

    result = job.execute_in_process(raise_on_error=False)

    assert not result.success
    assert loader.sandbox.stats.by_route == {JOBS_ROUTE: attempts}


def _dag_tree() -> ast.Module:
    return ast.parse(AIRFLOW_DAG.read_text())


def _call(tree: ast.Module, name: str) -> ast.Call:
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and name in (getattr(node.func, "id", None), getattr(node.func, "attr", None))
    ]
    assert len(calls) == 1, f"{name}() called {len(calls)} times"
    return calls[0]


def _keywords(call: ast.Call) -> Dict[str, ast.expr]:
    return {k.arg: k.value for k in call.keywords if k.arg}


def test_airflow_recipe_runs_the_whole_source_as_one_task():
    tree = _dag_tree()
    add_run = _keywords(_call(tree, "add_run"))
    assert ast.literal_eval(add_run["decompose"]) == "none"
    dag = _keywords(_call(tree, "DAG"))
    constants = {
        target.id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    schedule = dag["schedule"]
    if isinstance(schedule, ast.Name):
        schedule = constants[schedule.id]
    assert ast.literal_eval(schedule) in ("@hourly", "0 * * * *")
    assert ast.literal_eval(dag["catchup"]) is False
    assert ast.literal_eval(dag["max_active_runs"]) == 1
    args = dag["default_args"]
    assert isinstance(args, ast.Dict)
    default_args = {ast.literal_eval(k): v for k, v in zip(args.keys, args.values, strict=True)}
    assert ast.literal_eval(default_args["retries"]) >= 1
    # the group is named per target: by the pipeline name, not a constant string
    group = _call(tree, "PipelineTasksGroup")
    assert isinstance(group.args[0], ast.Name) and group.args[0].id == "PIPELINE_NAME"
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "sources.openai_fine_tuning"
        for alias in node.names
    }
    assert "openai_fine_tuning" in imported
    assert "default_pipeline_name" in AIRFLOW_DAG.read_text()
    assert not re.search(r"sk-[A-Za-z0-9]{8,}", AIRFLOW_DAG.read_text())


AIRFLOW_RUN = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("openai_ft_dag", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
run = module.dag.test()
states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
print(json.dumps({"state": str(run.state), "tasks": states, "pipeline": module.PIPELINE_NAME}))
"""


@pytest.mark.skipif(
    importlib.util.find_spec("airflow") is None,
    reason='Airflow is not in the test extra (too heavy for CI): pip install -e ".[airflow]"',
)
def test_airflow_dag_loads_the_sandbox_exactly(loader, world, tmp_path):
    """`dag.test()` in a subprocess (Airflow configures logging and dlt's env on import)."""
    dags = tmp_path / "dags"
    dags.mkdir()
    shutil.copy(AIRFLOW_DAG, dags / AIRFLOW_DAG.name)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "OPENAI_BASE_URL": loader.sandbox.base_url,
        "OPENAI_FT_DUCKDB_PATH": str(loader.duckdb_path),
        "AIRFLOW_CONN_OPENAI_DEFAULT": json.dumps({"conn_type": "generic", "password": API_KEY}),
    }
    migrate = [sys.executable, "-m", "airflow", "db", "migrate"]
    subprocess.run(migrate, env=env, check=True, capture_output=True, timeout=240)
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-c", AIRFLOW_RUN, str(dags / AIRFLOW_DAG.name)],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        outcome = json.loads(done.stdout.strip().splitlines()[-1])
        assert outcome["state"].endswith("success"), outcome
        assert set(outcome["tasks"]) == {
            f"{outcome['pipeline']}.{outcome['pipeline']}",
            "refresh_views",
        }
        assert_history_equal_truth(loader, world)
        world.advance(seconds=3600, new_checkpoints=2)


def _workflow() -> Dict[str, Any]:
    return yaml.safe_load(WORKFLOW.read_text())


def _flag(command: str, flag: str) -> str:
    found = re.search(rf"{flag}[ =](\S+)", command)
    assert found, f"{flag} missing from: {command}"
    return found.group(1)


def test_github_actions_example_loads_hourly_with_state_kept():
    text = WORKFLOW.read_text()
    flow = _workflow()
    triggers = flow[True] if True in flow else flow["on"]  # YAML 1.1 reads `on` as true
    crons = [entry["cron"] for entry in triggers["schedule"]]
    assert crons and all(re.fullmatch(r"\d{1,2} \* \* \* \*", cron) for cron in crons)
    assert "workflow_dispatch" in triggers
    assert flow["concurrency"]["group"] and flow["concurrency"]["cancel-in-progress"] is False
    (job,) = flow["jobs"].values()
    assert 0 < job["timeout-minutes"] <= 60
    steps = job["steps"]
    uses = [step.get("uses", "") for step in steps]
    python = next(s for s in steps if s.get("uses", "").startswith("actions/setup-python"))
    assert str(python["with"]["python-version"]) == "3.12"

    load = next(s for s in steps if "openai-ft load" in s.get("run", ""))
    command = " ".join(load["run"].split())
    assert "--json" in command
    cache = next(s for s in steps if s.get("uses", "").startswith("actions/cache"))
    assert uses.index(cache["uses"]) < steps.index(load)  # restored before the load
    cached = set(cache["with"]["path"].split())
    # the state and the DuckDB file it describes are cached together
    assert _flag(command, "--pipelines-dir") in cached
    assert _flag(command, "--duckdb-path") in cached
    # caches are immutable: a new key per run, restored by prefix
    assert "${{ github.run_id }}" in cache["with"]["key"]
    prefix = cache["with"]["restore-keys"].strip()
    assert cache["with"]["key"].startswith(prefix)

    # the key only as a secret, only in env, never literal
    assert load["env"]["OPENAI_API_KEY"] == "${{ secrets.OPENAI_API_KEY }}"
    secret_uses = re.findall(r"\$\{\{\s*secrets\.(\w+)\s*\}\}", text)
    assert secret_uses == ["OPENAI_API_KEY"]
    assert "secrets." not in load["run"]
    assert not re.search(r"sk-[A-Za-z0-9_-]{8,}", text)
    assert "OPENAI_API_KEY" not in command
