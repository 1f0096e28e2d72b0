"""The installed `openai-ft` command and the pipeline script, run as a user runs them."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
import requests

from fake_openai import FineTuningWorld
from tests.helpers import API_KEY, DATASET, REPO, written

OPENAI_FT = str(Path(sys.executable).parent / "openai-ft")


def _run(command: list, cwd: Path, env: dict, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env.update(RUNTIME__DLTHUB_TELEMETRY="false", **extra)
    return env


def test_demo_end_to_end(tmp_path):
    result = _run([OPENAI_FT, "demo", "--pipelines-dir", str(tmp_path / "pl")], tmp_path, _env())
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    world = FineTuningWorld(seed=7, jobs=24)  # the demo's defaults
    truth = {c["id"] for c in world.truth_checkpoints()}
    with duckdb.connect(str(tmp_path / "openai_fine_tuning_demo.duckdb"), read_only=True) as con:
        loaded = {r[0] for r in con.execute(f"SELECT id FROM {DATASET}.checkpoints").fetchall()}
        best = con.execute(f"SELECT count(*) FROM {DATASET}.best_checkpoints").fetchone()[0]
    assert loaded == truth
    out = result.stdout
    assert written(out, "checkpoints") == len(truth)
    assert "Best checkpoint per job (view best_checkpoints):" in out
    assert f"({best} rows)" in out  # one row per job whose checkpoints have metrics
    report = tmp_path / "openai_fine_tuning_demo_report.html"
    with_steps = sum(world.job_steps(j) > 0 for j in world.job_ids())
    assert f"Training report: {report} (24 jobs, {min(20, with_steps)} charts)" in out
    assert report.read_text().count('<svg class="job-chart"') == min(20, with_steps)
    hint = next(line for line in out.splitlines() if "SELECT * FROM job_summary" in line)
    # the closing hint runs as printed
    command = shlex.split(hint.strip())
    again = _run([OPENAI_FT, *command[1:], "--format", "csv"], tmp_path, _env())
    assert again.returncode == 0 and len(again.stdout.splitlines()) == 1 + 24
    # a second demo run starts over and shows the same complete load
    again = _run([OPENAI_FT, "demo", "--pipelines-dir", str(tmp_path / "pl")], tmp_path, _env())
    assert again.returncode == 0 and written(again.stdout, "checkpoints") == len(truth)


def test_sandbox_command_and_load_from_another_directory(tmp_path, unused_port):
    sandbox = subprocess.Popen(
        [
            OPENAI_FT,
            "sandbox",
            "--port",
            str(unused_port),
            "--seed",
            "3",
            "--jobs",
            "6",
            "--api-key",
            API_KEY,
            "--fault-rate",
            "0.3",
            "--fault-seed",
            "5",
            "--fault-kinds",
            "500,503,502_html,429_retry_after_ms,drop",
        ],
        env=_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        root = f"http://127.0.0.1:{unused_port}"
        for _ in range(100):
            try:
                requests.get(f"{root}/_sandbox/stats", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        env = _env(
            OPENAI_API_KEY=API_KEY,
            OPENAI_BASE_URL=f"{root}/v1",
            SOURCES__OPENAI_FINE_TUNING__MAX_ATTEMPTS="10",
            SOURCES__OPENAI_FINE_TUNING__BACKOFF_BASE="0.01",
        )
        workdir = tmp_path / "elsewhere"
        workdir.mkdir()
        pipelines_dir = tmp_path / "dlt" / "pipelines"  # where DLT_DATA_DIR puts dlt's
        first = _run([OPENAI_FT, "load", "--pipelines-dir", str(pipelines_dir)], workdir, env)
        assert first.returncode == 0, first.stderr
        truth = requests.get(f"{root}/_sandbox/truth", timeout=5).json()
        assert written(first.stdout, "checkpoints") == len(truth["checkpoints"])
        assert (workdir / "openai_ft.duckdb").exists()

        requests.post(f"{root}/_sandbox/advance?seconds=600&checkpoints=1", timeout=5)
        truth = requests.get(f"{root}/_sandbox/truth", timeout=5).json()
        # the verified-sources-style script: the same load, the same state, no flags
        second = _run(
            [sys.executable, str(REPO / "pipelines" / "openai_fine_tuning_pipeline.py")],
            workdir,
            {**env, "DLT_DATA_DIR": str(tmp_path / "dlt")},
        )
        assert second.returncode == 0, second.stderr
        with duckdb.connect(str(workdir / "openai_ft.duckdb"), read_only=True) as con:
            ids = [r[0] for r in con.execute(f"SELECT id FROM {DATASET}.checkpoints").fetchall()]
        assert sorted(ids) == sorted(c["id"] for c in truth["checkpoints"])
        injected = requests.get(f"{root}/_sandbox/stats", timeout=5).json()["faults_injected"]
        assert sum(injected.values()) > 0  # the loads above retried through real faults
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)


def test_error_exit_code_and_single_line_from_the_real_command(tmp_path):
    result = _run(
        [OPENAI_FT, "load", "--pipelines-dir", str(tmp_path / "pl")], tmp_path, _env(), timeout=60
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "No OpenAI API key" in result.stderr


def test_other_dlt_destination_filesystem(sandbox, world, tmp_path, monkeypatch, capsys):
    from pipelines.cli import main

    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("DESTINATION__FILESYSTEM__BUCKET_URL", (tmp_path / "lake").as_uri())
    args = ["load", "--destination", "filesystem", "--pipelines-dir", str(tmp_path / "pl")]
    assert main(args) == 0
    world.advance(seconds=60, new_checkpoints=1)
    assert main(args) == 0
    assert "Loaded into filesystem, dataset openai_fine_tuning" in capsys.readouterr().out

    files = tmp_path / "lake" / DATASET / "checkpoints" / "*.parquet"
    with duckdb.connect() as con:
        ids = [r[0] for r in con.execute(f"SELECT id FROM read_parquet('{files}')").fetchall()]
    # the filesystem destination appends: each checkpoint arrives exactly once across runs
    assert sorted(ids) == sorted(c["id"] for c in world.truth_checkpoints())


@pytest.mark.parametrize("unbuffered", ["1", None])
def test_output_closed_by_its_reader_ends_quietly_after_the_load(
    sandbox, world, tmp_path, unbuffered
):
    """`openai-ft load | head -2`: the reader goes away before the summary is printed (which
    a buffered stdout writes at the end, an unbuffered one line by line)."""
    env = _env(OPENAI_API_KEY=API_KEY, OPENAI_BASE_URL=sandbox.base_url)
    env.pop("PYTHONUNBUFFERED", None)
    if unbuffered:
        env["PYTHONUNBUFFERED"] = unbuffered
    command = [OPENAI_FT, "load", "--pipelines-dir", str(tmp_path / "pl")]
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    process.stdout.close()  # no reader: the summary's first write finds the pipe closed
    _, stderr = process.communicate(timeout=120)
    assert (process.returncode, stderr.decode()) == (0, "")  # the load's work was done
    with duckdb.connect(str(tmp_path / "openai_ft.duckdb"), read_only=True) as connection:
        jobs = connection.execute(f"SELECT count(*) FROM {DATASET}.jobs").fetchone()[0]
    assert jobs == len(world.job_ids())
