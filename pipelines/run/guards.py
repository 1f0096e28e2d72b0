"""The DuckDB file and the run lock: checked before any API request, held while a run writes."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Optional

import filelock
from dlt.common.pipeline import get_dlt_pipelines_dir

from pipelines.errors import (
    DestinationError,
    DuckDBLockedError,
    RunInProgressError,
    duckdb_locked,
)
from sources.openai_fine_tuning.errors import ConfigurationError

if TYPE_CHECKING:  # imported on first use: a rerun imports it while the job list is read
    import duckdb

Notify = Callable[[str], None]


def open_duckdb_file(path: str) -> duckdb.DuckDBPyConnection:
    """Opens (or creates) the DuckDB file; a file that cannot be used is a DestinationError,
    one held by another process a DuckDBLockedError."""
    import duckdb

    target = Path(path)
    if target.parent.exists() and not target.parent.is_dir():
        raise DestinationError(
            f"Cannot create the DuckDB file '{target}': '{target.parent}' is not a directory"
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # the path as dlt gives it to DuckDB: connections of this process then share one database
        return duckdb.connect(os.path.abspath(target))
    except OSError as error:
        raise DestinationError(
            f"Cannot create the DuckDB file '{target}': {error.strerror or error}"
        ) from None
    except duckdb.Error as error:
        message = " ".join(str(error).split())
        locked = duckdb_locked(error, str(target))
        if locked is not None:
            raise locked from None
        if "not a valid DuckDB database" in message or "database file" in message.lower():
            raise DestinationError(
                f"The file '{target}' is not a valid DuckDB database: move it away or choose"
                " another --duckdb-path"
            ) from None
        raise DestinationError(f"Cannot open the DuckDB file '{target}': {message}") from None


def wait_for_duckdb_file(
    path: str, wait: bool, timeout: float, notify: Notify
) -> duckdb.DuckDBPyConnection:
    """`open_duckdb_file`; with `wait`, a file held by another process is waited for (up to
    `timeout` seconds, saying once what it waits for) instead of failing at once."""
    try:
        return open_duckdb_file(path)
    except DuckDBLockedError as error:
        if not wait:
            raise
        notify(f"openai-ft: waiting up to {timeout:g} s: {error}")
    deadline = time.monotonic() + timeout
    while True:
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        try:
            return open_duckdb_file(path)
        except DuckDBLockedError as error:
            if time.monotonic() >= deadline:
                raise DuckDBLockedError(f"{error} (waited {timeout:g} s)") from None


@contextmanager
def holding_duckdb_file(
    destination: str, path: str, wait: bool, timeout: float, notify: Notify
) -> Iterator[None]:
    """Keeps the DuckDB file open in this process for the steps inside (as
    `wait_for_duckdb_file` opens it); nothing for other destinations.

    dlt opens and closes the file for each of its clients (the state sync, each load job, the
    package's completion), then come the views and the row counts: ~40 ms each for DuckDB to
    start the database and checkpoint it on close. While one connection stays open, DuckDB
    shares the open database with every new connection of this process (~1 ms). A run holds
    the file only while it writes, not while it reads the API, so readers get it in between.
    """
    if destination != "duckdb":
        yield
        return
    connection = wait_for_duckdb_file(path, wait, timeout, notify)
    try:
        yield
    finally:
        connection.close()


@contextmanager
def run_lock(
    pipeline_name: str,
    pipelines_dir: Optional[str],
    wait: bool,
    timeout: float = 600.0,
    notify: Optional[Notify] = None,
) -> Iterator[Path]:
    """Holds `<pipelines_dir>/<pipeline_name>.run.lock` for the run.

    The lock is an OS file lock: a killed run (even SIGKILL) releases it with its process.

    Args:
        pipeline_name: The dlt pipeline whose state the run changes.
        pipelines_dir: dlt's working dir; dlt's default when None.
        wait: Wait for the other run to end instead of failing at once.
        timeout: Seconds to wait at most.
        notify: Told once when the run starts waiting.
    """
    if not timeout >= 0:  # also NaN; checked here, where every caller's timeout starts
        raise ConfigurationError(f"--wait-timeout must be 0 or more seconds, got {timeout}")
    directory = Path(pipelines_dir or get_dlt_pipelines_dir())
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{pipeline_name}.run.lock"
    lock = filelock.FileLock(str(path))
    busy = f"Another run of pipeline '{pipeline_name}' is in progress (lock {path})"
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        if not wait:
            raise RunInProgressError(
                f"{busy}: let it finish, or pass --wait to run after it"
            ) from None
        if notify:
            notify(f"openai-ft: waiting up to {timeout:g} s: {busy}")
        try:
            lock.acquire(timeout=timeout)
        except filelock.Timeout:
            raise RunInProgressError(f"{busy}, still after {timeout:g} s") from None
    try:
        yield path
    finally:
        lock.release()
