"""Fixtures: a real sandbox server on a free loopback port, and loads into a real DuckDB file."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import duckdb
import pytest

from fake_openai import FineTuningWorld, SandboxServer
from pipelines.openai_fine_tuning_pipeline import LoadSummary, load

API_KEY = "sk-test-3f9a1c0d5e7b2a4c6e8f0a1b"
DATASET = "openai_fine_tuning"
TERMINAL = ("succeeded", "failed", "cancelled")
METRICS = (
    "step",
    "train_loss",
    "train_mean_token_accuracy",
    "valid_loss",
    "valid_mean_token_accuracy",
    "full_valid_loss",
    "full_valid_mean_token_accuracy",
)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No user config, no OpenAI environment, no telemetry: each test starts clean."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
    monkeypatch.delenv("RUNTIME__LOG_LEVEL", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def world() -> FineTuningWorld:
    return FineTuningWorld(seed=11, jobs=12, max_checkpoints=8)


@pytest.fixture
def sandbox(world: FineTuningWorld):
    with SandboxServer(world, api_key=API_KEY) as server:
        yield server


@dataclass
class Loader:
    """Runs loads against the sandbox into one DuckDB file and one pipelines dir."""

    sandbox: SandboxServer
    tmp_path: Path

    @property
    def duckdb_path(self) -> Path:
        return self.tmp_path / "ft.duckdb"

    @property
    def pipelines_dir(self) -> Path:
        return self.tmp_path / "pipelines"

    def run(self, **options: Any) -> LoadSummary:
        options.setdefault("api_key", API_KEY)
        options.setdefault("base_url", self.sandbox.base_url)
        return load(
            duckdb_path=str(self.duckdb_path), pipelines_dir=str(self.pipelines_dir), **options
        )

    def rows(self, table: str, order: str = "id") -> List[Dict[str, Any]]:
        with duckdb.connect(str(self.duckdb_path), read_only=True) as con:
            cursor = con.execute(f"SELECT * FROM {DATASET}.{table} ORDER BY {order}")
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def count(self, table: str) -> int:
        with duckdb.connect(str(self.duckdb_path), read_only=True) as con:
            return con.execute(f"SELECT count(*) FROM {DATASET}.{table}").fetchone()[0]


@pytest.fixture
def loader(sandbox: SandboxServer, tmp_path: Path) -> Loader:
    return Loader(sandbox, tmp_path)


def epoch(value: Any) -> Optional[int]:
    return None if value is None else int(value.timestamp())


def checkpoint_as_loaded(checkpoint: Dict[str, Any]) -> Dict[str, Any]:
    """The row a correct load holds for an API checkpoint."""
    metrics = checkpoint["metrics"]
    return {
        "id": checkpoint["id"],
        "created_at": checkpoint["created_at"],
        "fine_tuned_model_checkpoint": checkpoint["fine_tuned_model_checkpoint"],
        "fine_tuning_job_id": checkpoint["fine_tuning_job_id"],
        "step_number": checkpoint["step_number"],
        "object": checkpoint["object"],
        **{f"metrics__{m}": metrics.get(m) for m in METRICS},
    }


def loaded_checkpoint(row: Dict[str, Any]) -> Dict[str, Any]:
    keys = ["id", "fine_tuned_model_checkpoint", "fine_tuning_job_id", "step_number", "object"]
    return {
        **{k: row[k] for k in keys},
        "created_at": epoch(row["created_at"]),
        **{f"metrics__{m}": row[f"metrics__{m}"] for m in METRICS},
    }


def assert_checkpoints_equal_truth(loader: Loader, world: FineTuningWorld) -> None:
    rows = loader.rows("checkpoints")
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicate checkpoint rows"
    expected = sorted(
        (checkpoint_as_loaded(c) for c in world.truth_checkpoints()), key=lambda c: c["id"]
    )
    assert [loaded_checkpoint(r) for r in rows] == expected


def assert_jobs_equal_truth(loader: Loader, world: FineTuningWorld) -> None:
    rows = {r["id"]: r for r in loader.rows("jobs")}
    truth = {j["id"]: j for j in world.truth_jobs()}
    assert sorted(rows) == sorted(truth)
    for job_id, job in truth.items():
        row = rows[job_id]
        for name in ("created_at", "finished_at", "estimated_finish"):
            assert epoch(row[name]) == job[name], (job_id, name)
        for name in (
            "status",
            "model",
            "fine_tuned_model",
            "organization_id",
            "training_file",
            "validation_file",
            "trained_tokens",
            "seed",
            "object",
        ):
            assert row[name] == job[name], (job_id, name)
        for name in (
            "error",
            "hyperparameters",
            "integrations",
            "metadata",
            "method",
            "result_files",
        ):
            loaded = None if row[name] is None else json.loads(row[name])
            assert loaded == job[name], (job_id, name)


def expected_rerun_requests(world: FineTuningWorld, page_size: int, settled: set) -> Dict[str, int]:
    """The request budget of a no-change rerun: job-list pages down to the oldest unsettled
    job (at least one), plus one checkpoints request per unsettled job."""
    ids = world.job_ids()
    unsettled = [i for i, job_id in enumerate(ids) if job_id not in settled]
    deepest = unsettled[-1] if unsettled else 0
    return {
        "GET /v1/fine_tuning/jobs": math.ceil((deepest + 1) / page_size),
        "GET /v1/fine_tuning/jobs/{id}/checkpoints": len(unsettled),
    }


@pytest.fixture
def unused_port() -> int:
    """A loopback port nothing listens on."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def cli(sandbox, tmp_path, monkeypatch, capsys):
    """Runs `openai-ft load` in-process against the sandbox.

    `run(*args, env={NAME: value or None}, duckdb_path=None)` returns (exit code, stdout,
    stderr without surrounding whitespace).
    """
    from pipelines.cli import main

    monkeypatch.setenv("OPENAI_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)

    def run(*args: str, env: Optional[dict] = None, duckdb_path: Optional[Path] = None):
        for name, value in (env or {}).items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        path = str(duckdb_path or tmp_path / "ft.duckdb")
        code = main(
            ["load", "--duckdb-path", path, "--pipelines-dir", str(tmp_path / "pipelines"), *args]
        )
        out, err = capsys.readouterr()
        return code, out, err.strip()

    return run
