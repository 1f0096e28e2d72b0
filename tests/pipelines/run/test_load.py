"""What an operator of a scheduled run relies on: signals, waiting for a held DuckDB file, the
JSON summary, exit codes of a wrong destination, and reruns on every destination."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from filelock import FileLock

from pipelines.run import TABLES, load
from tests.helpers import API_KEY, Loader, assert_history_equal_truth, no_change_rows

# every table a load writes: the resources' and the derived ones
WRITTEN = (*TABLES, "step_grader_scores")

STOPPED = "nothing loaded is lost, and the next run finishes what this one started"


def _start(loader: Loader, *args: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "OPENAI_API_KEY": API_KEY,
        "OPENAI_BASE_URL": loader.sandbox.base_url,
        "RUNTIME__DLTHUB_TELEMETRY": "false",
    }
    return subprocess.Popen(
        loader.command(*args),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(condition, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if condition():
            return
        if process.poll() is not None:
            break
        time.sleep(0.01)
    process.kill()
    raise AssertionError(f"never saw {what}: {process.communicate()}")


@pytest.mark.parametrize(
    "signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"]
)
def test_signal_mid_extraction_stops_within_5_s_and_the_rerun_is_exact(
    sandbox, world, tmp_path, signum, code
):
    loader = Loader(sandbox, tmp_path)
    sandbox.latency = 0.2  # the run is still reading when the signal comes
    process = _start(loader)
    _wait_for(lambda: sandbox.stats.total >= 3, process, "the run's requests")

    process.send_signal(signum)
    out, err = process.communicate(timeout=5)  # a hang fails the test here

    assert process.returncode == code
    assert out == ""
    assert err.strip().splitlines() == [
        f"openai-ft: error: Stopped by {signal.Signals(signum).name}: {STOPPED}"
    ]
    sandbox.latency = 0
    loader.run()
    assert_history_equal_truth(loader, world)


def test_sigterm_while_waiting_for_the_run_lock(sandbox, world, tmp_path):
    loader = Loader(sandbox, tmp_path)
    loader.pipelines_dir.mkdir()
    lock = FileLock(str(loader.pipelines_dir / "nightly.run.lock"))
    with lock:  # another run of the pipeline holds it
        process = _start(loader, "--pipeline-name", "nightly", "--wait")
        first = process.stderr.readline()
        assert first.startswith("openai-ft: waiting up to 600 s: Another run of pipeline")
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=5)
    assert process.returncode == 143 and out == ""
    assert err.strip().splitlines() == [f"openai-ft: error: Stopped by SIGTERM: {STOPPED}"]
    assert sandbox.stats.total == 0


def _hold_duckdb(path: Path, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]);"
            " print('ready', flush=True); time.sleep(float(sys.argv[2]))",
            str(path),
            str(seconds),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "ready"
    return holder


def test_wait_for_a_held_duckdb_file_says_so_once_then_loads(cli, sandbox, world, tmp_path):
    target = tmp_path / "ft.duckdb"
    holder = _hold_duckdb(target, 2)  # a BI tool that lets go after a while
    try:
        code, out, err = cli("--wait", duckdb_path=target)
    finally:
        holder.wait()
    assert code == 0, err
    assert err == (
        f"openai-ft: waiting up to 600 s: The DuckDB file '{target}' is locked by another"
        f" process (PID {holder.pid}): close that connection (a DuckDB shell, a notebook) and"
        " retry"
    )
    assert_history_equal_truth(Loader(sandbox, tmp_path), world)


def _hold_duckdb_while_events_are_read(world, path: Path, seconds: float) -> list:
    """A reader (a BI tool) opens the DuckDB file while the run reads the API: at its first
    events request. Returns the list the holder process lands in."""
    holders: list = []
    list_events = world.list_events
    first = threading.Lock()  # events are read by several threads at once: one holder

    def first_request_opens_the_file(*args, **kwargs):
        with first:
            if not holders:
                holders.append(_hold_duckdb(path, seconds))
        return list_events(*args, **kwargs)

    world.list_events = first_request_opens_the_file
    return holders


def test_file_opened_by_a_reader_during_extraction(cli, sandbox, world, tmp_path):
    """The run holds the file only while it writes; a reader that opened it meanwhile is
    waited for with --wait, and without it the run stops with exit 5 and the next run loads
    what was extracted."""
    target = tmp_path / "ft.duckdb"

    def held(holder) -> str:
        return (
            f"The DuckDB file '{target}' is locked by another process (PID {holder.pid}): close"
            " that connection (a DuckDB shell, a notebook) and retry"
        )

    holders = _hold_duckdb_while_events_are_read(world, target, 1.5)
    code, out, err = cli("--wait", duckdb_path=target)
    holders[0].wait()
    assert (code, err) == (0, f"openai-ft: waiting up to 600 s: {held(holders[0])}")
    loader = Loader(sandbox, tmp_path)
    assert_history_equal_truth(loader, world)

    world.advance(seconds=3600, new_checkpoints=2)
    holders = _hold_duckdb_while_events_are_read(world, target, 1.5)
    code, out, err = cli(duckdb_path=target)
    holders[0].wait()
    assert (code, out, err) == (
        5,
        "",
        f"openai-ft: error: {held(holders[0])}, or pass --wait to wait for it",
    )
    code, out, err = cli(duckdb_path=target)
    assert (code, err) == (0, "")
    assert "finished 1 load package(s) left by an interrupted run" in out
    assert_history_equal_truth(loader, world)


def test_wait_timeout_for_a_held_duckdb_file_exits_5(cli, sandbox, tmp_path):
    target = tmp_path / "ft.duckdb"
    holder = _hold_duckdb(target, 60)
    try:
        code, out, err = cli("--wait", "--wait-timeout", "1", duckdb_path=target)
    finally:
        holder.kill()
        holder.wait()
    held = (
        f"The DuckDB file '{target}' is locked by another process (PID {holder.pid}): close"
        " that connection (a DuckDB shell, a notebook) and retry"
    )
    assert (code, out) == (5, "")
    assert err.splitlines() == [
        f"openai-ft: waiting up to 1 s: {held}",
        f"openai-ft: error: {held} (waited 1 s)",
    ]
    assert sandbox.stats.total == 0


JSON_KEYS = {
    "pipeline_name",
    "pipelines_dir",
    "destination",
    "dataset",
    "rows_written",
    "requests",
    "retries",
    "rate_limited",
    "elapsed_s",
    "open_jobs",
    "settled_jobs",
    "load_ids",
    "exit_code",
    "error",
    "models_skipped",
    "shutdowns",
    "training_files",
    "invalid_training_lines",
    "non_utf8_files",
}


def test_json_is_one_object_on_stdout(cli, sandbox, world, tmp_path):
    code, out, err = cli("--json")
    assert (code, err) == (0, "")
    summary = json.loads(out)  # the whole of stdout is one object
    assert JSON_KEYS <= set(summary)
    truth = Loader(sandbox, tmp_path)
    assert summary["rows_written"] == {table: truth.count(table) for table in WRITTEN}
    assert summary["requests"] == sandbox.stats.total
    assert (summary["exit_code"], summary["error"], summary["retries"]) == (0, None, 0)
    assert summary["dataset"] == "openai_fine_tuning"
    assert summary["pipeline_name"].startswith("openai_fine_tuning_")
    assert Path(summary["pipelines_dir"], summary["pipeline_name"]).is_dir()
    assert len(summary["load_ids"]) == 1
    jobs = world.truth_jobs()
    assert summary["open_jobs"] + summary["settled_jobs"] == len(jobs)

    code, out, _ = cli("--json")
    again = json.loads(out)
    assert again["rows_written"] == no_change_rows(world)
    assert again["pipeline_name"] == summary["pipeline_name"]


def test_json_on_failure_is_still_one_object(cli):
    code, out, err = cli("--json", env={"OPENAI_API_KEY": "sk-wrong-0000000000000000"})
    assert code == 3
    summary = json.loads(out)
    assert summary["exit_code"] == 3
    assert summary["error"].startswith("The API rejected the key (401 Unauthorized)")
    assert summary["rows_written"] == {} and summary["load_ids"] == []
    assert err == f"openai-ft: error: {summary['error']}"


@pytest.mark.parametrize(
    "destination, message",
    [
        (
            "duckbd",
            "Unknown destination 'duckbd' (did you mean 'duckdb'?): use a dlt destination such"
            " as duckdb, motherduck, postgres, bigquery, snowflake or filesystem (--destination)",
        ),
        (
            "snowflake",
            "The snowflake destination needs 'snowflake', which is not installed:"
            ' pip install "dlt[snowflake]"',
        ),
    ],
)
def test_wrong_or_uninstalled_destination_exits_2(cli, sandbox, destination, message):
    code, out, err = cli("--destination", destination)
    assert (code, out, err) == (2, "", f"openai-ft: error: {message}")
    assert sandbox.stats.total == 0


def test_postgres_without_its_driver_names_the_extra(sandbox, tmp_path):
    # an environment without psycopg2: a package of that name that cannot be imported
    shim = tmp_path / "no_driver" / "psycopg2"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'psycopg2'\", name='psycopg2')\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(shim.parent),
        "OPENAI_API_KEY": API_KEY,
        "OPENAI_BASE_URL": sandbox.base_url,
        "DESTINATION__POSTGRES__CREDENTIALS": "postgresql://u:p@127.0.0.1:1/db",
    }
    result = subprocess.run(
        Loader(sandbox, tmp_path).command("--destination", "postgres"),
        env=env,
        capture_output=True,
        text=True,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.strip() == (
        "openai-ft: error: The postgres destination needs 'psycopg2', which is not installed:"
        ' pip install "dlt[postgres]"'
    )


def test_postgres_without_credentials_says_what_to_set(cli, sandbox):
    code, out, err = cli("--destination", "postgres")
    assert (code, out) == (2, "")
    assert err == (
        "openai-ft: error: The postgres destination has no credentials: set"
        " [destination.postgres] credentials in .dlt/secrets.toml or"
        " DESTINATION__POSTGRES__CREDENTIALS (a connection string)"
    )


def test_base_url_without_v1_hints_at_it(cli, sandbox):
    code, out, err = cli(env={"OPENAI_BASE_URL": sandbox.root_url})
    assert (code, out) == (2, "")
    assert err == (
        "openai-ft: error: GET /fine_tuning/jobs answered 404 (Invalid URL (GET"
        " /fine_tuning/jobs)): no fine-tuning API under the base URL"
        f" '{sandbox.root_url}'; OpenAI's ends in /v1 (sources.openai_fine_tuning.base_url or"
        " OPENAI_BASE_URL)"
    )


def test_load_and_reruns_as_time_passes_on_every_destination(target, sandbox, world):
    options = {"api_key": API_KEY, "base_url": sandbox.base_url, **target.load_options()}
    first = load(**options)
    assert_history_equal_truth(target, world)
    assert first.rows == {table: target.count(table) for table in WRITTEN}
    # each row once in the destination: dlt's staging copy is emptied once loaded; a first
    # load into DuckDB appends the tables read once per run (nothing to merge with), so
    # staging has only the tables a run writes twice
    merged_first = ("jobs", "files", "models") if target.name == "duckdb" else WRITTEN
    assert target.staging_rows() == dict.fromkeys(merged_first, 0)

    # nested tables are listed only when rows were written to them
    assert load(**options).rows == no_change_rows(world)
    for _ in range(2):
        world.advance(seconds=3600, new_checkpoints=2)
        world.add_job(status="running", checkpoints=1)
        load(**options)
        assert_history_equal_truth(target, world)
    # later runs merge every table through staging (and empty it)
    assert target.staging_rows() == dict.fromkeys(WRITTEN, 0)


def test_dlt_extraction_polls_its_pool_every_2_ms_unless_configured(loader, monkeypatch):
    """dlt sleeps a poll interval whenever a parallel step ends a generator (each job's read
    ends one): load() makes it 2 ms instead of dlt's 10 (bench/NOTES.md), unless configured."""
    from dlt.common.configuration import resolve_configuration
    from dlt.extract.pipe_iterator import PipeIterator

    def resolved() -> float:
        return resolve_configuration(PipeIterator.PipeIteratorConfiguration()).futures_poll_interval

    loader.run(resources=["jobs"])
    assert resolved() == 0.002
    monkeypatch.setenv("EXTRACT__FUTURES_POLL_INTERVAL", "0.05")
    loader.run(resources=["jobs"])
    assert resolved() == 0.05
