"""The `openai-ft` command line: every command, flag, default, environment variable and exit
code, as `--help` shows them."""

from __future__ import annotations

import argparse
from datetime import date
from importlib import metadata
from typing import Dict, Tuple

from fake_openai.faults import FAULT_KINDS, ROUTE_KINDS
from pipelines.exits import EXIT_CODES
from sources.openai_fine_tuning.settings import RESOURCES

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
    import dlt

    try:
        own = metadata.version("dlt-openai-fine-tuning")
    except metadata.PackageNotFoundError:  # run from a checkout that was not installed
        own = "unknown"
    return f"openai-ft {own} (dlt {dlt.__version__})"


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _target(parser: argparse.ArgumentParser, duckdb_default: str = "openai_ft.duckdb") -> None:
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


def _state(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pipelines-dir",
        metavar="DIR",
        help="dlt's working dir, where the state lives (default: dlt's, ~/.dlt/pipelines or"
        " /var/dlt/pipelines as root)",
    )
    parser.add_argument(
        "--duckdb-memory-limit",
        default="128MB",
        metavar="SIZE",
        help="DuckDB's memory while loading",
    )


def _load(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    load = commands.add_parser(
        "load",
        parents=[common],
        formatter_class=HelpFormatter,
        help="load what is new (incremental)",
        description="Loads what is new since the last run: jobs, checkpoints, events and step"
        " metrics, files, results and training data, and the models list with its shutdown"
        " dates, then refreshes the views.",
        epilog=f"{ENVIRONMENT}\n\n{EXIT_CODES}",
    )
    _target(load)
    _state(load)
    load.add_argument(
        "--pipeline-name",
        metavar="NAME",
        help="dlt pipeline (and state) name (default: openai_fine_tuning_ plus a digest of"
        " the destination target and the API identity: one state per target)",
    )
    load.add_argument(
        "--job", action="append", dest="job_ids", metavar="ID", help="only this job (repeatable)"
    )
    load.add_argument(
        "--resources",
        metavar="LIST",
        help=f"comma-separated, from: {', '.join(RESOURCES)} (default: all)",
    )
    load.add_argument(
        "--full-refresh",
        action="store_true",
        help="forget the state, drop the tables and load everything again",
    )
    load.add_argument(
        "--page-size", type=int, metavar="N", help="items per list request, 1..100 (default: 100)"
    )
    load.add_argument(
        "--workers", type=int, metavar="N", help="requests in flight at once, 1..64 (default: 8)"
    )
    load.add_argument(
        "--wait",
        action="store_true",
        help="if this pipeline is running, or the DuckDB file is held by another process,"
        " wait for it instead of exiting",
    )
    load.add_argument(
        "--wait-timeout",
        type=float,
        default=600,
        metavar="SECONDS",
        help="how long --wait waits before giving up",
    )
    load.add_argument(
        "--progress",
        action="store_true",
        help="a live progress line on stderr (the default when stderr is a terminal)",
    )
    load.add_argument(
        "--json",
        action="store_true",
        help="print exactly one JSON object on stdout (the summary, also on failure)",
    )


def _sql(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    sql = commands.add_parser(
        "sql",
        parents=[common],
        formatter_class=HelpFormatter,
        help="run SQL on the loaded dataset and print the rows",
        description="Runs a query on the pipeline's destination (DuckDB by default, any dlt SQL"
        " destination) with the dataset as the default schema: SELECT * FROM job_summary.",
        epilog=f"{READ_ENVIRONMENT}\n\n{EXIT_CODES}",
    )
    sql.add_argument(
        "query", nargs="?", default="-", help="the SQL; omit it (or -) to read it from stdin"
    )
    sql.add_argument(
        "--format",
        choices=("table", "csv", "json"),
        default="table",
        dest="output",
        help="output format",
    )
    _target(sql)


def _report(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    report = commands.add_parser(
        "report",
        parents=[common],
        formatter_class=HelpFormatter,
        help="write a self-contained HTML training report",
        description="Writes one HTML file (opens offline): the model shutdowns (which fine-tuned"
        " models stop serving when, and whether their training data is archived), the job"
        " summary, loss, accuracy and reward curves of the most recent jobs, and final"
        " validation loss across jobs.",
        epilog=f"{READ_ENVIRONMENT}\n\n{EXIT_CODES}",
    )
    report.add_argument(
        "--out", default="openai_ft_report.html", metavar="PATH", help="the HTML file to write"
    )
    report.add_argument(
        "--job",
        action="append",
        dest="job_ids",
        default=[],
        metavar="ID",
        help="also chart this job (repeatable)",
    )
    report.add_argument(
        "--since", type=_date, metavar="YYYY-MM-DD", help="only jobs created on or after"
    )
    report.add_argument(
        "--charts", type=int, default=20, metavar="N", help="chart the N most recent jobs"
    )
    _target(report)


def _export(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    export = commands.add_parser(
        "export",
        parents=[common],
        formatter_class=HelpFormatter,
        help="write the archived training and validation files back out, byte for byte",
        description="Writes every archived training and validation file (JSONL) to"
        " DIR/<file_id>/<filename> and DIR/manifest.json, from the destination alone (works"
        " after OpenAI deleted the files). Each file is checked against the SHA-256 recorded"
        " when it was downloaded; one that differs or is incomplete is named and not written"
        " (exit 5).",
        epilog=f"{READ_ENVIRONMENT}\n\n{EXIT_CODES}",
    )
    export.add_argument("--out", default="openai_ft_export", metavar="DIR", help="where to write")
    export.add_argument(
        "--job",
        action="append",
        dest="job_ids",
        default=[],
        metavar="ID",
        help="only the files of this job (repeatable)",
    )
    _target(export)


def _demo(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    demo = commands.add_parser(
        "demo",
        parents=[common],
        formatter_class=HelpFormatter,
        help="load sample data from the bundled sandbox (no key, no network)",
        description="Serves generated jobs on a free 127.0.0.1 port, loads them, prints the"
        " best checkpoints and writes the training report. Needs no key and no network.",
        epilog=EXIT_CODES,
    )
    demo.add_argument(
        "--duckdb-path",
        default="openai_fine_tuning_demo.duckdb",
        metavar="PATH",
        help="the DuckDB file",
    )
    demo.add_argument(
        "--dataset", default="openai_fine_tuning", metavar="NAME", help="dataset (schema) name"
    )
    _state(demo)
    demo.add_argument(
        "--report",
        default="openai_fine_tuning_demo_report.html",
        metavar="PATH",
        help="where to write the training report",
    )
    demo.add_argument("--seed", type=int, default=7, help="seed of the sample data")
    demo.add_argument("--jobs", type=int, default=24, help="number of sample jobs")


def _sandbox(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    sandbox = commands.add_parser(
        "sandbox",
        parents=[common],
        formatter_class=HelpFormatter,
        help="serve the OpenAI-compatible sandbox",
        description="Serves generated fine-tuning data on 127.0.0.1 as the OpenAI API does"
        " (also the Azure OpenAI paths). Controls under /_sandbox/: stats, truth, advance,"
        " finish, jobs, latency, faults, rate_limit (see README). Stops on Ctrl-C.",
        epilog=EXIT_CODES,
    )
    add = sandbox.add_argument
    add("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    add("--seed", type=int, default=7, help="seed of the generated data")
    add("--jobs", type=int, default=24, help="number of generated jobs")
    add("--max-checkpoints", type=int, default=8, help="most checkpoints of a generated job")
    add("--checkpoints-per-job", type=int, help="exactly this many checkpoints per job")
    add("--big-job-checkpoints", type=int, help="checkpoints of the oldest job")
    add("--max-steps", type=int, default=300, help="most training steps of a generated job")
    add(
        "--big-job-steps",
        type=int,
        default=1200,
        help="training steps of one finished job (0: no such job)",
    )
    add("--latency-ms", type=float, default=0.0, help="added to every /v1 response")
    add(
        "--rate-limit",
        type=float,
        metavar="RPS",
        help="requests per second admitted (token bucket); beyond it 429 with retry-after-ms",
    )
    add("--rate-burst", type=float, help="token bucket size (default: RPS)")
    add("--api-key", default="sk-sandbox", help="the key the sandbox accepts")
    add("--fault-rate", type=float, default=0.0, help="share of requests that fail, 0..1")
    add("--fault-seed", type=int, default=0, help="seed of the fault draws")
    add(
        "--fault-kinds",
        default=",".join(FAULT_KINDS),
        help="comma-separated; repeat one to weight it",
    )
    add("--fault-routes", help=f"comma-separated, from: {', '.join(ROUTE_KINDS)} (default: all)")


def parser() -> Tuple[argparse.ArgumentParser, Dict[str, argparse.ArgumentParser]]:
    """The command's parser, and each subcommand's (to show its usage on a mistyped flag)."""
    main = argparse.ArgumentParser(
        prog="openai-ft",
        formatter_class=HelpFormatter,
        description="Archive OpenAI fine-tuning history into DuckDB (or any dlt destination),"
        " query it and report on it.",
        epilog=EXIT_CODES,
    )
    main.add_argument("--version", action="version", version=version())
    main.add_argument("--verbose", action="store_true", help="show tracebacks on errors")
    # --verbose also after the command; SUPPRESS keeps the top-level value when absent
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show tracebacks on errors and dlt's own warnings",
    )
    commands = main.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_load, _sql, _report, _export, _demo, _sandbox):
        add(commands, common)
    return main, dict(commands.choices)
