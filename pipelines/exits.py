"""How a run ends: every failure or signal becomes one line and an exit code.

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
from typing import Iterable, Optional

from pipelines.signals import Terminated, stopped_message
from sources.openai_fine_tuning.errors import FineTuningSourceError
from sources.openai_fine_tuning.stopping import StoppedError

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


def chain(error: BaseException) -> Iterable[BaseException]:
    """The error and what caused it, outermost first."""
    seen = set()
    current: Optional[BaseException] = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


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
                " 128MB); the extracted rows are kept and the next run loads them"
            )
        return EXIT_DESTINATION, f"Destination error during {error.step}: " + one_line(
            f"{type(root).__name__}: {root}"
        )[:300]
    root = list(chain(error))[-1]
    return EXIT_UNEXPECTED, f"Unexpected error: {type(root).__name__}: {one_line(str(root))[:300]}"
