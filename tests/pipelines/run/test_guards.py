"""A bad destination or an overlapping run fails at once, before any API request."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from pipelines.cli import main
from tests.helpers import API_KEY, written

OPENAI_FT = [sys.executable, "-m", "pipelines.cli"]


@contextmanager
def duckdb_file_held(target: Path) -> Iterator[subprocess.Popen]:
    """Another process holding the DuckDB file open, until the block ends."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]);"
            " print('ready', flush=True); time.sleep(60)",
            str(target),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        yield holder
    finally:
        holder.kill()
        holder.wait()


def test_unwritable_duckdb_path(cli, sandbox, tmp_path):
    (tmp_path / "afile").write_text("I am a file")
    target = tmp_path / "afile" / "ft.duckdb"
    code, _, err = cli(duckdb_path=target)
    assert code == 5
    assert err == (
        f"openai-ft: error: Cannot create the DuckDB file '{target}': '{tmp_path / 'afile'}'"
        " is not a directory"
    )
    assert sandbox.stats.total == 0


def test_missing_parent_directories_are_created(cli, tmp_path):
    code, _, _ = cli(duckdb_path=tmp_path / "data" / "warehouse" / "ft.duckdb")
    assert code == 0 and (tmp_path / "data" / "warehouse" / "ft.duckdb").is_file()


def test_duckdb_file_locked_by_another_process(cli, sandbox, tmp_path):
    target = tmp_path / "ft.duckdb"
    with duckdb_file_held(target) as holder:
        code, _, err = cli(duckdb_path=target)
        assert code == 5
        assert err == (
            f"openai-ft: error: The DuckDB file '{target}' is locked by another process"
            f" (PID {holder.pid}): close that connection (a DuckDB shell, a notebook) and retry,"
            " or pass --wait to wait for it"
        )
        assert sandbox.stats.total == 0
    assert cli(duckdb_path=target)[0] == 0  # released: the next run works


def test_a_rerun_with_the_duckdb_file_locked_makes_no_request(cli, sandbox, tmp_path):
    """A rerun reads the job list ahead, but only once the DuckDB file is its own."""
    target = tmp_path / "ft.duckdb"
    assert cli(duckdb_path=target)[0] == 0
    sandbox.stats.reset()
    with duckdb_file_held(target):
        code, _, err = cli(duckdb_path=target)
        assert code == 5
        assert err.startswith(f"openai-ft: error: The DuckDB file '{target}' is locked by")
        assert sandbox.stats.total == 0


def test_corrupt_duckdb_file(cli, sandbox, tmp_path):
    target = tmp_path / "ft.duckdb"
    target.write_bytes(b"this is not a database\n" * 512)
    code, _, err = cli(duckdb_path=target)
    assert code == 5
    assert err == (
        f"openai-ft: error: The file '{target}' is not a valid DuckDB database: move it away or"
        " choose another --duckdb-path"
    )
    assert sandbox.stats.total == 0


def _start_slow_run(sandbox, tmp_path) -> subprocess.Popen:
    """A load in another process, slowed by sandbox latency; returns once it has requested."""
    sandbox.latency = 0.25
    env = {
        "OPENAI_BASE_URL": sandbox.base_url,
        "OPENAI_API_KEY": API_KEY,
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        "PATH": "/usr/bin:/bin",
    }
    first = subprocess.Popen(
        [
            *OPENAI_FT,
            "load",
            "--duckdb-path",
            str(tmp_path / "ft.duckdb"),
            "--pipelines-dir",
            str(tmp_path / "pipelines"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for _ in range(600):
        if sandbox.stats.total:
            return first
        time.sleep(0.05)
    first.kill()
    raise AssertionError("the first run never reached the sandbox")


def test_overlapping_run_exits_at_once(cli, sandbox, tmp_path):
    first = _start_slow_run(sandbox, tmp_path)
    try:
        code, out, err = cli()
        assert code == 6 and out == ""
        (lock,) = (tmp_path / "pipelines").glob("openai_fine_tuning_*.run.lock")
        name = lock.name.removesuffix(".run.lock")
        assert err == (
            f"openai-ft: error: Another run of pipeline '{name}' is in progress"
            f" (lock {lock}): let it finish, or pass --wait to run after it"
        )
    finally:
        assert first.wait(timeout=120) == 0, first.stderr.read()


def test_overlapping_run_with_wait_runs_after(cli, sandbox, world, tmp_path):
    first = _start_slow_run(sandbox, tmp_path)
    result = {}
    second = threading.Thread(target=lambda: result.update(run=cli("--wait")))
    second.start()
    assert first.wait(timeout=120) == 0, first.stderr.read()
    second.join(timeout=120)
    code, out, _ = result["run"]
    assert code == 0
    # it ran after the first had loaded everything: nothing new
    assert [written(out, t) for t in ("jobs", "checkpoints", "events")] == [0, 0, 0]


@pytest.mark.parametrize("limit", ["lots", "128", "-1GB"])
def test_invalid_duckdb_memory_limit(cli, sandbox, limit):
    code, _, err = cli(f"--duckdb-memory-limit={limit}")
    assert code == 2
    assert err == (
        f"openai-ft: error: Invalid DuckDB memory limit {limit!r}: expected a size such as 128MB"
        " or 2GB (--duckdb-memory-limit)"
    )
    assert sandbox.stats.total == 0


def test_duckdb_memory_limit_is_accepted_by_duckdb(cli, world, tmp_path):
    code, out, _ = cli("--duckdb-memory-limit", "1GB")
    assert code == 0 and written(out, "checkpoints") == len(world.truth_checkpoints())


def test_duckdb_out_of_memory_is_one_line_and_the_next_run_recovers(tmp_path, monkeypatch, capsys):
    from fake_openai import FineTuningWorld, SandboxServer
    from tests.helpers import Loader, assert_checkpoints_equal_truth

    world = FineTuningWorld(seed=3, jobs=1, big_job_checkpoints=2_000)
    with SandboxServer(world, api_key=API_KEY) as sandbox:
        monkeypatch.setenv("OPENAI_BASE_URL", sandbox.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
        loader = Loader(sandbox, tmp_path)
        args = [
            "load",
            "--duckdb-path",
            str(loader.duckdb_path),
            "--pipelines-dir",
            str(loader.pipelines_dir),
        ]
        code = main([*args, "--duckdb-memory-limit", "4MB"])
        err = capsys.readouterr().err
        assert code == 5
        assert err.strip() == (
            "openai-ft: error: DuckDB ran out of memory while loading: raise"
            " --duckdb-memory-limit (default 64MB); the extracted rows are kept and the next"
            " run loads them"
        )
        sandbox.stats.reset()
        assert main(args) == 0
        assert "finished 1 load package(s) left by an interrupted run" in capsys.readouterr().out
        assert_checkpoints_equal_truth(loader, world)


def test_duckdb_memory_limit_default_is_one_value_everywhere():
    """The CLI's default (set without importing dlt), `load()`'s, and the one the
    out-of-memory hint names (`test_duckdb_out_of_memory...` above) are the same."""
    import argparse

    from pipelines.cli.options import add_state
    from pipelines.run.destinations import DUCKDB_MEMORY_LIMIT

    parser = argparse.ArgumentParser()
    add_state(parser)
    assert parser.parse_args([]).duckdb_memory_limit == DUCKDB_MEMORY_LIMIT == "64MB"


@pytest.mark.parametrize(
    "destination, configured, workers",
    [("duckdb", None, 2), ("postgres", None, 20), ("duckdb", "3", 3)],
)
def test_load_workers(destination, configured, workers, tmp_path, monkeypatch):
    """Into DuckDB two load jobs at a time, elsewhere dlt's 20; `load.workers` decides when set."""
    from pipelines.run import make_pipeline
    from pipelines.run.loader import load_workers

    if configured:
        monkeypatch.setenv("LOAD__WORKERS", configured)
    pipeline = make_pipeline(destination, duckdb_path=str(tmp_path / "ft.duckdb"))
    assert load_workers(pipeline) == workers
