"""One state per target: which destination (and where in it) and which API identity a
pipeline's state belongs to, and the default pipeline name derived from both.

The per-job ledger records what one destination holds from one organization. Shared between
two DuckDB files, two datasets, PostgreSQL and DuckDB, or two projects, it would make the
second target skip what only the first one has. The default pipeline name therefore carries a
short stable digest of the target and the API identity; a state recorded for another target
is refused (a named pipeline reused across targets).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Dict

from sources.openai_fine_tuning.errors import ConfigurationError

PIPELINE_PREFIX = "openai_fine_tuning"
# non-secret fields that say where a destination writes (whichever its credentials have)
_WHERE_FIELDS = (
    "drivername",
    "host",
    "port",
    "database",
    "username",
    "project_id",
    "account",
    "warehouse",
    "catalog",
    "bucket_url",
    "location",
)


def destination_identity(destination: str, duckdb_path: str, dataset: str) -> Dict[str, Any]:
    """Where the data goes, without secrets: destination, its database (or file), dataset."""
    if destination == "duckdb":
        return {"destination": "duckdb", "file": os.path.abspath(duckdb_path), "dataset": dataset}
    from dlt.common.configuration.specs.base_configuration import is_secret_hint
    from dlt.common.destination import Destination

    # an unknown name raises dlt's UnknownDestinationModule (exit 2, with a "did you mean")
    factory = Destination.from_reference(destination)
    try:
        config = factory.configuration(None, accept_partial=True)
    except ModuleNotFoundError as error:  # some configurations import their driver
        raise missing_driver(factory.destination_name, error) from None
    where: Dict[str, Any] = {}
    credentials = getattr(config, "credentials", None)
    hints = credentials.get_resolvable_fields() if credentials is not None else {}
    for name in _WHERE_FIELDS:
        if name in hints and not is_secret_hint(hints[name]):
            where[name] = getattr(credentials, name, None)
        elif hasattr(config, name):
            where[name] = getattr(config, name)
    return {"destination": factory.destination_name, "where": where, "dataset": dataset}


def missing_driver(destination: str, error: ModuleNotFoundError) -> ConfigurationError:
    """The error for a destination whose driver is not installed, naming dlt's extra."""
    return ConfigurationError(
        f"The {destination} destination needs {error.name!r}, which is not installed:"
        f' pip install "dlt[{destination}]"'
    )


def target_digest(destination: Dict[str, Any], api: Dict[str, Any]) -> str:
    """8 hex characters, stable across runs and machines for the same target and account
    (DuckDB files are identified by their absolute path)."""
    payload = json.dumps({"to": destination, "from": api}, sort_keys=True, default=str)
    return hashlib.blake2b(payload.encode(), digest_size=4).hexdigest()


def default_pipeline_name(digest: str) -> str:
    return f"{PIPELINE_PREFIX}_{digest}"


def describe(destination: Dict[str, Any], api: Dict[str, Any]) -> str:
    """One line naming a target, for messages."""
    where = destination.get("file") or ", ".join(
        f"{k}={v}" for k, v in (destination.get("where") or {}).items() if v not in (None, "")
    )
    account = (
        ", ".join(f"{k} {api[k]}" for k in ("organization", "project") if api.get(k))
        or "no organization/project"
    )
    return (
        f"{destination['destination']} {where} dataset {destination['dataset']}"
        f" from {api['base_url']} ({account})"
    )
