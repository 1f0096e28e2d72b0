"""What the commands share: the help formatter, the environment the help lists, the target
and state options, the version line, and keeping secrets out of what is printed."""

from __future__ import annotations

import argparse
import os
from datetime import date
from importlib import metadata
from typing import List, Optional

SECRET_VARIABLES = (
    "OPENAI_API_KEY",
    "AZURE_OPENAI_API_KEY",
    "AZURE_OPENAI_AD_TOKEN",
    "SOURCES__OPENAI_FINE_TUNING__API_KEY",
    "SOURCES__OPENAI_FINE_TUNING__AZURE_AD_TOKEN",
)


ENVIRONMENT = """environment:
  OPENAI_API_KEY          the API key (or sources.openai_fine_tuning.api_key in .dlt/secrets.toml)
  OPENAI_BASE_URL         API root, default https://api.openai.com/v1
  OPENAI_ORG_ID, OPENAI_PROJECT_ID   sent as OpenAI-Organization / OpenAI-Project
  Azure OpenAI (with SOURCES__OPENAI_FINE_TUNING__API_TYPE=azure):
    AZURE_OPENAI_ENDPOINT   https://<resource>.openai.azure.com
    AZURE_OPENAI_API_KEY    the resource key (or AZURE_OPENAI_AD_TOKEN, an Entra ID token)
    OPENAI_API_VERSION      a dated API version (not needed for /openai/v1)
  SOURCES__OPENAI_FINE_TUNING__<KEY> any source option (PAGE_SIZE, RESOURCES, API_TYPE, ...)
  DESTINATION__<NAME>__CREDENTIALS   credentials of a dlt destination (e.g. POSTGRES)"""
READ_ENVIRONMENT = """environment:
  DESTINATION__<NAME>__CREDENTIALS   credentials of a dlt destination (e.g. POSTGRES); or
                                     [destination.<name>] credentials in .dlt/secrets.toml"""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows every default that is a value (not an unset option), keeps the epilog's lines."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        unset = default in (None, False, argparse.SUPPRESS) or default == []
        if "(default" in text or unset or not text:
            return text
        return f"{text} (default: %(default)s)"


def version() -> str:
    """`openai-ft 0.1.0 (dlt 1.31.0)`, from the installed distributions (dlt is not imported:
    the version line must come at once)."""
    versions = []
    for distribution in ("dlt-openai-fine-tuning", "dlt"):
        try:
            versions.append(metadata.version(distribution))
        except metadata.PackageNotFoundError:  # run from a checkout that was not installed
            versions.append("unknown")
    return f"openai-ft {versions[0]} (dlt {versions[1]})"


def parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def add_target(parser: argparse.ArgumentParser, duckdb_default: str = "openai_ft.duckdb") -> None:
    parser.add_argument(
        "--destination",
        default="duckdb",
        help="any dlt destination (duckdb, postgres, bigquery, snowflake, motherduck,"
        " filesystem, ...); credentials through dlt config",
    )
    parser.add_argument(
        "--duckdb-path", default=duckdb_default, metavar="PATH", help="the DuckDB file"
    )
    parser.add_argument(
        "--dataset", default="openai_fine_tuning", metavar="NAME", help="dataset (schema) name"
    )


def add_state(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pipelines-dir",
        metavar="DIR",
        help="dlt's working dir, where the state lives (default: dlt's, ~/.dlt/pipelines or"
        " /var/dlt/pipelines as root)",
    )
    parser.add_argument(
        "--duckdb-memory-limit",
        default="64MB",
        metavar="SIZE",
        help="DuckDB's memory while loading",
    )


def secrets() -> List[Optional[str]]:
    """The secrets this process was given, to mask in anything printed."""
    return [os.environ.get(name) for name in SECRET_VARIABLES]


def redact(text: str) -> str:
    """The text with every secret of this process (4 characters or more) masked."""
    for secret in secrets():
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text
