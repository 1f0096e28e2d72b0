"""The errors of `pipelines/`, each with its exit code, and how any error or signal a run can
end with becomes one line and an exit code. (The source's own errors, with theirs, are in
`sources/openai_fine_tuning/errors.py`: `sources/` imports nothing from here.)

| code | meaning |
|---|---|
| 0 | success |
| 1 | unexpected error (a bug: report it with `--verbose` output) |
| 2 | configuration or input |
| 3 | authentication |
| 4 | upstream API |
| 5 | destination |
| 6 | another run of this pipeline is in progress |
| 130 | interrupted (SIGINT, Ctrl-C) |
| 143 | terminated (SIGTERM: cron timeouts, systemd, Kubernetes, Airflow) |
"""

from __future__ import annotations

import difflib
import re
import signal
from typing import Iterable, List, Optional

from sources.openai_fine_tuning.errors import ConfigurationError, FineTuningSourceError
from sources.openai_fine_tuning.http.stopping import StoppedError

EXIT_UNEXPECTED = 1
EXIT_CONFIG = 2
EXIT_DESTINATION = 5
EXIT_INTERRUPTED = 128 + signal.SIGINT
EXIT_TERMINATED = 128 + signal.SIGTERM
EXIT_CODES = """exit codes:
  0 success            1 unexpected error (a bug: report it with --verbose output)
  2 configuration or input          3 authentication (401, 403)
  4 upstream API       5 destination            6 another run of this pipeline in progress
  130 interrupted (SIGINT)          143 terminated (SIGTERM)"""
KNOWN_DESTINATIONS = (
    "duckdb",
    "motherduck",
    "postgres",
    "bigquery",
    "snowflake",
    "redshift",
    "mssql",
    "databricks",
    "clickhouse",
    "athena",
    "synapse",
    "dremio",
    "filesystem",
    "sqlalchemy",
)


# ---- the errors this package raises on purpose, each with its exit code ----------


class DestinationError(FineTuningSourceError):
    """The destination cannot be written: unwritable path, locked or corrupt DuckDB file."""

    exit_code = 5


class DuckDBLockedError(DestinationError):
    """The DuckDB file is held by another process (a BI tool, a notebook, a shell)."""


class RunInProgressError(FineTuningSourceError):
    """Another run of the same pipeline holds the run lock."""

    exit_code = 6


class QueryError(ConfigurationError):
    """The query failed in the destination (exit 2: the query is the user's input)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C, so the run unwinds the same way."""


def stopped_message(signum: int) -> str:
    return (
        f"Stopped by {signal.Signals(signum).name}: nothing loaded is lost, and the next run"
        " finishes what this one started"
    )


# ---- how any error or signal becomes an exit code and one line -------------------


def chain(error: BaseException) -> Iterable[BaseException]:
    """The error and every error it wraps (cause, context, dlt's `inner_exc`), outermost
    first, once each."""
    seen = set()
    pending: List[Optional[BaseException]] = [error]
    while pending:
        current = pending.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [current.__cause__, current.__context__, getattr(current, "inner_exc", None)]


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def _signal_exit(error: BaseException) -> Optional[tuple[int, str]]:
    from dlt.common.exceptions import SignalReceivedException

    for cause in chain(error):
        terminated = isinstance(cause, Terminated) or (
            isinstance(cause, SignalReceivedException) and cause.signal_code == signal.SIGTERM
        )
        if terminated or isinstance(cause, (KeyboardInterrupt, StoppedError)):
            signum = signal.SIGTERM if terminated else signal.SIGINT
            return 128 + signum, stopped_message(signum)
    return None


def _destination_exit(error: BaseException) -> Optional[tuple[int, str]]:
    from dlt.common.destination.exceptions import UnknownDestinationModule
    from dlt.common.exceptions import MissingDependencyException

    for cause in chain(error):
        if isinstance(cause, UnknownDestinationModule):
            close = difflib.get_close_matches(cause.ref, KNOWN_DESTINATIONS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return EXIT_CONFIG, (
                f"Unknown destination {cause.ref!r}{hint}: use a dlt destination such as"
                f" {', '.join(KNOWN_DESTINATIONS[:5])} or filesystem (--destination)"
            )
        if isinstance(cause, MissingDependencyException):
            install = " ".join(f'"{d}"' for d in cause.dependencies)
            return EXIT_CONFIG, (
                f"The {cause.caller or 'destination'} needs a package that is not installed:"
                f" pip install {install}"
            )
    return None


def _missing_config(error: BaseException) -> str:
    """What to set, for dlt's missing-configuration error (whose own text is 40 lines)."""
    text = str(error)
    destination = re.search(r"Environment Variables, DESTINATION__([A-Z0-9_]+?)__CREDENTIALS", text)
    fields = ", ".join(getattr(error, "fields", None) or ())
    if destination and "credentials" in fields:
        name = destination.group(1)
        return (
            f"The {name.lower()} destination has no credentials: set [destination.{name.lower()}]"
            f" credentials in .dlt/secrets.toml or DESTINATION__{name}__CREDENTIALS (a connection"
            " string)"
        )
    keys = re.findall(r"Environment Variables, ([A-Z0-9_]+)\)", text)
    example = f" (for example {keys[-1]})" if keys else ""
    spec = getattr(error, "spec_name", "the configuration")
    return (
        f"Missing configuration {fields or ''} of {spec}: set it in .dlt/config.toml,"
        f" .dlt/secrets.toml or an environment variable{example}"
    )


def duckdb_locked(error: BaseException, path: Optional[str] = None) -> Optional[DuckDBLockedError]:
    """The `DuckDBLockedError` to raise when `error` (or what it wraps) is DuckDB refusing a
    file that another process holds, else None.

    dlt wraps DuckDB's error in its own (an `IOException` from the client, or a
    `DestinationConnectionError` that blames credentials and the network and keeps the
    original as `inner_exc`), so the whole chain is searched.

    Args:
        error: What opening or querying the file raised.
        path: The file as the user named it; else the path in DuckDB's message.
    """
    import duckdb  # here: the command's start need not load DuckDB

    for cause in chain(error):
        if not isinstance(cause, duckdb.Error):
            continue
        message = " ".join(str(cause).split())
        if "lock" not in message.lower():
            continue
        holder = re.search(r"\(PID (\d+)\)", message)
        named = re.search(r'lock on file "([^"]+)"', message)
        target = path or (named.group(1) if named else "")
        who = f" (PID {holder.group(1)})" if holder else ""
        return DuckDBLockedError(
            f"The DuckDB file '{target}' is locked by another process{who}: close that"
            " connection (a DuckDB shell, a notebook) and retry"
        )
    return None


def explain(error: BaseException) -> tuple[int, str]:
    """(exit code, one-line message) for any error or signal a run can end with."""
    from dlt.common.configuration.exceptions import (
        ConfigFieldMissingException,
        ConfigurationException,
    )
    from dlt.pipeline.exceptions import PipelineStepFailed

    found = _signal_exit(error)
    if found:
        return found
    for cause in chain(error):
        if isinstance(cause, FineTuningSourceError):
            return cause.exit_code, one_line(str(cause))
    found = _destination_exit(error)
    if found:
        return found
    for cause in chain(error):
        if isinstance(cause, ConfigFieldMissingException):
            return EXIT_CONFIG, _missing_config(cause)
        if isinstance(cause, ConfigurationException):
            return EXIT_CONFIG, "Configuration error: " + one_line(str(cause))[:300]
    if isinstance(error, PipelineStepFailed) and error.step in ("sync", "load"):
        root = list(chain(error))[-1]
        if "Out of Memory Error" in str(root):
            return EXIT_DESTINATION, (
                "DuckDB ran out of memory while loading: raise --duckdb-memory-limit (default"
                " 64MB); the extracted rows are kept and the next run loads them"
            )
        return EXIT_DESTINATION, f"Destination error during {error.step}: " + one_line(
            f"{type(root).__name__}: {root}"
        )[:300]
    root = list(chain(error))[-1]
    return EXIT_UNEXPECTED, f"Unexpected error: {type(root).__name__}: {one_line(str(root))[:300]}"
