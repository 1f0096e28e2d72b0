"""Loading in tests: the sandbox worlds, a `Loader` (the sandbox into one DuckDB file) and a
`Target` (DuckDB or PostgreSQL, queried through dlt's SQL client), the way a test makes them."""

from __future__ import annotations

import sys
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import duckdb
import pytest

from fake_openai import FineTuningWorld, SandboxServer
from pipelines.run import LoadSummary, load

API_KEY = "sk-test-3f9a1c0d5e7b2a4c6e8f0a1b"
DATASET = "openai_fine_tuning"


LONG_JOB = {"big_job_steps": 1200}  # `world` with a job whose events span 12 pages


def default_world(**options: Any) -> FineTuningWorld:
    """12 jobs of every status and method; one has 300 steps (events over 3 pages)."""
    return FineTuningWorld(
        **{"seed": 11, "jobs": 12, "max_checkpoints": 8, "big_job_steps": 300, **options}
    )


@dataclass
class Loader:
    """Runs loads against the sandbox into one DuckDB file and one pipelines dir."""

    sandbox: SandboxServer
    tmp_path: Path
    connection: Optional[duckdb.DuckDBPyConnection] = None  # while `reading()`

    @property
    def duckdb_path(self) -> Path:
        return self.tmp_path / "ft.duckdb"

    @property
    def pipelines_dir(self) -> Path:
        return self.tmp_path / "pipelines"

    def command(self, *args: str) -> List[str]:
        """`openai-ft load` into this loader's file and pipelines dir, as a process runs it."""
        return [
            sys.executable,
            "-m",
            "pipelines.cli",
            "load",
            "--duckdb-path",
            str(self.duckdb_path),
            "--pipelines-dir",
            str(self.pipelines_dir),
            *args,
        ]

    def run(self, **options: Any) -> LoadSummary:
        options.setdefault("api_key", API_KEY)
        options.setdefault("base_url", self.sandbox.base_url)
        return load(
            duckdb_path=str(self.duckdb_path), pipelines_dir=str(self.pipelines_dir), **options
        )

    @contextmanager
    def reading(self) -> Iterator[None]:
        """The queries inside share one read-only connection (DuckDB takes ~40 ms to open a
        file); a load must not run inside, it needs the file."""
        if self.connection is not None:
            yield
            return
        with duckdb.connect(str(self.duckdb_path), read_only=True) as self.connection:
            try:
                yield
            finally:
                self.connection = None

    def query(self, sql: str) -> List[Dict[str, Any]]:
        """Rows as dicts; `{dataset}` in the SQL is the dataset."""
        with self.reading():
            cursor = self.connection.execute(sql.format(dataset=DATASET))
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def rows(self, table: str, order: str = "id") -> List[Dict[str, Any]]:
        return self.query(f"SELECT * FROM {{dataset}}.{table} ORDER BY {order}")

    def count(self, table: str) -> int:
        return self.query(f"SELECT count(*) AS n FROM {{dataset}}.{table}")[0]["n"]


def python_pipeline(tmp_path: Path, name: str, database: str = "ft.duckdb") -> Any:
    """A dlt pipeline as the README's Python example makes it, into a DuckDB file."""
    import dlt

    return dlt.pipeline(
        name,
        destination=dlt.destinations.duckdb(str(tmp_path / database)),
        dataset_name=DATASET,
        pipelines_dir=str(tmp_path / "pl"),
    )


POSTGRES_ENV = "OPENAI_FT_TEST_POSTGRES"


@dataclass
class Target:
    """A destination the tests load into and query through dlt's SQL client."""

    name: str
    dataset: str
    tmp_path: Path
    duckdb_file: str = "ft.duckdb"
    client: Any = None

    @property
    def duckdb_path(self) -> Path:
        return self.tmp_path / self.duckdb_file

    def load_options(self) -> Dict[str, Any]:
        return {
            "destination": self.name,
            "dataset": self.dataset,
            "duckdb_path": str(self.duckdb_path),
            "pipelines_dir": str(self.tmp_path / f"pipelines_{self.name}"),
        }

    def pipeline(self) -> Any:
        """A reading pipeline (no state) on this target."""
        from pipelines.run import existing_pipeline

        return existing_pipeline(self.name, str(self.duckdb_path), self.dataset)

    def rows(self, table: str, order: str = "id") -> List[Dict[str, Any]]:
        return self.query(f"SELECT * FROM {{dataset}}.{table} ORDER BY {order}")

    def count(self, table: str) -> int:
        return self.query(f"SELECT count(*) AS n FROM {{dataset}}.{table}")[0]["n"]

    def staging_rows(self) -> Dict[str, int]:
        """Rows in each data table of the staging dataset dlt merges through."""
        with self.pipeline().sql_client() as client, client.with_staging_dataset():
            listed = (
                "SELECT table_name FROM information_schema.tables"
                f" WHERE table_schema = '{client.dataset_name}' AND table_name NOT LIKE '_dlt%'"
            )
            with client.execute_query(listed) as cursor:
                tables = [row[0] for row in cursor.fetchall()]
            counts = {}
            for table in tables:
                name = client.make_qualified_table_name(table)
                with client.execute_query(f"SELECT count(*) FROM {name}") as cursor:
                    counts[table] = cursor.fetchone()[0]
            return counts

    @contextmanager
    def reading(self) -> Iterator[None]:
        """The queries inside share one SQL client (and its connection); no load inside."""
        if self.client is not None:
            yield
            return
        with self.pipeline().sql_client() as self.client:
            try:
                yield
            finally:
                self.client = None

    def query(self, sql: str) -> List[Dict[str, Any]]:
        """Rows as dicts; `{dataset}` in the SQL is the qualified dataset name."""
        with self.reading():
            dataset = self.client.make_qualified_table_name("x").rsplit(".", 1)[0]
            with self.client.execute_query(sql.format(dataset=dataset)) as cursor:
                names = [d[0] for d in cursor.description]
                return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def drop_postgres_dataset(dsn: str, dataset: str) -> None:
    import psycopg2

    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        for schema in (dataset, f"{dataset}_staging"):
            cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


TARGETS = ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]


def new_target(name: str, path: Path) -> Target:
    """A target of its own: the DuckDB file in `path`, or a new PostgreSQL dataset."""
    return Target(name, DATASET if name == "duckdb" else f"ft_test_{uuid.uuid4().hex[:12]}", path)


def postgres_credentials(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The test server's DSN, set as dlt's PostgreSQL credentials for this test."""
    dsn = request.getfixturevalue("postgres_dsn")
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", dsn)
    return dsn
