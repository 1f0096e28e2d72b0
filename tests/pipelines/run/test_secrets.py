"""The API key never lands anywhere: not in output, logs, dlt's working dir, state or DuckDB."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import duckdb
from dlt.pipeline.state_sync import decompress_state

from tests.helpers import DATASET

KEY = "sk-proj-SECRETleakcheck-7d1e0b9c4a2f8e6d5c3b"
WRONG_KEY = "sk-proj-WRONGleakcheck-0a9b8c7d6e5f4a3b2c1d"
OPENAI_FT = str(Path(sys.executable).parent / "openai-ft")


def _needles(key: str) -> list[bytes]:
    return [key.encode(), key[-12:].encode()]  # the whole key, and the tail the API echoes


def _leaks(root: Path, needles: list[bytes]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if path.suffix == ".gz":
            data += gzip.decompress(data)
        if any(n in data for n in needles):
            found.append(str(path))
    return found


def _run(args, cwd, **env):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    full_env.update(RUNTIME__DLTHUB_TELEMETRY="false", RUNTIME__LOG_LEVEL="DEBUG", **env)
    return subprocess.run(
        [OPENAI_FT, "--verbose", *args], cwd=cwd, env=full_env, capture_output=True, timeout=120
    )


def test_the_key_appears_nowhere(tmp_path):
    from fake_openai import FineTuningWorld, SandboxServer

    world = FineTuningWorld(seed=4, jobs=6)
    with SandboxServer(world, api_key=KEY) as sandbox:
        workdir = tmp_path / "work"
        (workdir / ".dlt").mkdir(parents=True)
        args = [
            "load",
            "--pipelines-dir",
            str(tmp_path / "pl"),
            "--duckdb-path",
            str(tmp_path / "out" / "ft.duckdb"),
        ]
        outputs = []
        # 1. key from the OpenAI SDK's variable, DEBUG logs on
        first = _run(args, workdir, OPENAI_API_KEY=KEY, OPENAI_BASE_URL=sandbox.base_url)
        assert first.returncode == 0, first.stderr
        outputs += [first.stdout, first.stderr]
        # 2. key resolved by dlt from .dlt/secrets.toml
        (workdir / ".dlt" / "secrets.toml").write_text(
            f'[sources.openai_fine_tuning]\napi_key = "{KEY}"\n'
        )
        world.advance(seconds=60, new_checkpoints=1)
        second = _run(args, workdir, OPENAI_BASE_URL=sandbox.base_url)
        assert second.returncode == 0, second.stderr
        outputs += [second.stdout, second.stderr]
        (workdir / ".dlt" / "secrets.toml").unlink()
        # 3. a rejected key (401), with traceback
        third = _run(args, workdir, OPENAI_API_KEY=WRONG_KEY, OPENAI_BASE_URL=sandbox.base_url)
        assert third.returncode == 3
        outputs += [third.stdout, third.stderr]

    needles = _needles(KEY) + _needles(WRONG_KEY)
    assert not [o for o in outputs if any(n in o for n in needles)]
    assert _leaks(tmp_path / "pl", needles) == []
    assert _leaks(tmp_path / "out", needles) == []
    # the state is stored compressed inside DuckDB: decode it and look inside too
    with duckdb.connect(str(tmp_path / "out" / "ft.duckdb"), read_only=True) as con:
        states = con.execute(f"SELECT state FROM {DATASET}._dlt_pipeline_state").fetchall()
        tables = con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [DATASET]
        ).fetchall()
        for (table,) in tables:
            dump = str(con.execute(f"SELECT * FROM {DATASET}.{table}").fetchall())
            assert KEY not in dump and KEY[-12:] not in dump, table
    assert states
    for (state,) in states:
        decoded = str(decompress_state(state))
        assert KEY not in decoded and KEY[-12:] not in decoded
