"""`openai-ft`: load fine-tuning history, run the demo, or serve the sandbox.

Errors print as one line on stderr (a traceback only with `--verbose`) and set the exit code:
1 unexpected, 2 configuration or input, 3 authentication, 4 upstream API, 5 destination.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from datetime import date
from typing import Iterable, List, Optional, Sequence

from fake_openai.faults import FAULT_KINDS, ROUTE_KINDS
from sources.openai_fine_tuning.errors import ConfigurationError, FineTuningSourceError
from sources.openai_fine_tuning.settings import RESOURCES

EXIT_UNEXPECTED = 1
EXIT_CONFIG = 2
EXIT_DESTINATION = 5


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="openai-ft",
        description="Load OpenAI fine-tuning history into DuckDB with dlt.",
    )
    parser.add_argument("--verbose", action="store_true", help="show tracebacks on errors")
    # --verbose also after the command; SUPPRESS keeps the top-level value when absent
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show tracebacks on errors",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    load = commands.add_parser("load", parents=[common], help="load what is new (incremental)")
    _add_load_options(load, duckdb_default="openai_ft.duckdb")
    load.add_argument(
        "--job", action="append", dest="job_ids", metavar="ID", help="only this job (repeatable)"
    )
    load.add_argument(
        "--destination",
        default="duckdb",
        help="any dlt destination; credentials through dlt config (default duckdb)",
    )
    load.add_argument(
        "--full-refresh",
        action="store_true",
        help="forget the state, drop the tables and load everything again",
    )
    load.add_argument(
        "--resources",
        metavar="LIST",
        help=f"comma-separated, from: {', '.join(RESOURCES)} (default all)",
    )
    load.add_argument("--page-size", type=int, help="items per list request, 1..100")
    load.add_argument("--workers", type=int, help="requests in flight at once, 1..64 (default 8)")
    load.add_argument(
        "--wait", action="store_true", help="if this pipeline is already running, wait for it"
    )

    sql = commands.add_parser(
        "sql",
        parents=[common],
        help="run SQL on the loaded dataset and print the rows",
        description="Runs a query on the pipeline's destination (DuckDB by default, any dlt SQL"
        " destination) with the dataset as the default schema: SELECT * FROM job_summary.",
    )
    sql.add_argument(
        "query", nargs="?", default="-", help="the SQL; omit it (or -) to read it from stdin"
    )
    sql.add_argument(
        "--format",
        choices=("table", "csv", "json"),
        default="table",
        dest="output",
        help="output format (default table)",
    )
    _add_target_options(sql)

    report = commands.add_parser(
        "report",
        parents=[common],
        help="write a self-contained HTML training report",
        description="Writes one HTML file (opens offline): the job summary, loss, accuracy and"
        " reward curves of the most recent jobs, and final validation loss across jobs.",
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
        "--charts",
        type=int,
        default=20,
        metavar="N",
        help="chart the N most recent jobs with steps (default 20)",
    )
    _add_target_options(report)

    demo = commands.add_parser(
        "demo", parents=[common], help="load sample data from the bundled sandbox (no key)"
    )
    _add_load_options(demo, duckdb_default="openai_fine_tuning_demo.duckdb")
    demo.add_argument(
        "--report",
        default="openai_fine_tuning_demo_report.html",
        metavar="PATH",
        help="where to write the training report",
    )
    demo.add_argument("--seed", type=int, default=7, help="seed of the sample data")
    demo.add_argument("--jobs", type=int, default=24, help="number of sample jobs")

    sandbox = commands.add_parser(
        "sandbox", parents=[common], help="serve the OpenAI-compatible sandbox"
    )
    sandbox.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    sandbox.add_argument("--seed", type=int, default=7)
    sandbox.add_argument("--jobs", type=int, default=24)
    sandbox.add_argument("--max-checkpoints", type=int, default=8)
    sandbox.add_argument("--checkpoints-per-job", type=int, help="exactly this many per job")
    sandbox.add_argument("--big-job-checkpoints", type=int, help="checkpoints of the oldest job")
    sandbox.add_argument(
        "--max-steps", type=int, default=300, help="most training steps of a generated job"
    )
    sandbox.add_argument(
        "--big-job-steps",
        type=int,
        default=1200,
        help="training steps of one finished job (0: no such job)",
    )
    sandbox.add_argument("--latency-ms", type=float, default=0.0)
    sandbox.add_argument(
        "--rate-limit",
        type=float,
        metavar="RPS",
        help="requests per second admitted (token bucket); beyond it 429 with retry-after-ms",
    )
    sandbox.add_argument("--rate-burst", type=float, help="token bucket size (default RPS)")
    sandbox.add_argument("--api-key", default="sk-sandbox", help="the key the sandbox accepts")
    sandbox.add_argument(
        "--fault-rate", type=float, default=0.0, help="share of requests that fail, 0..1"
    )
    sandbox.add_argument("--fault-seed", type=int, default=0)
    sandbox.add_argument(
        "--fault-kinds",
        default=",".join(FAULT_KINDS),
        help=f"comma-separated, from: {', '.join(FAULT_KINDS)}; repeat one to weight it",
    )
    sandbox.add_argument(
        "--fault-routes", help=f"comma-separated, from: {', '.join(ROUTE_KINDS)} (default all)"
    )
    return parser


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _add_target_options(parser: argparse.ArgumentParser) -> None:
    """Where the loaded data is: the same flags and defaults as `load`."""
    parser.add_argument("--destination", default="duckdb", help="any dlt SQL destination")
    parser.add_argument("--duckdb-path", default="openai_ft.duckdb", metavar="PATH")
    parser.add_argument("--dataset", default="openai_fine_tuning", metavar="NAME")


def _add_load_options(parser: argparse.ArgumentParser, duckdb_default: str) -> None:
    parser.add_argument("--duckdb-path", default=duckdb_default, metavar="PATH")
    parser.add_argument(
        "--duckdb-memory-limit",
        default="128MB",
        metavar="SIZE",
        help="DuckDB's memory while loading (default 128MB)",
    )
    parser.add_argument("--dataset", default="openai_fine_tuning", metavar="NAME")
    parser.add_argument(
        "--pipelines-dir",
        metavar="DIR",
        help="dlt working dir (state); separate installs should not share it",
    )


def _chain(error: BaseException) -> Iterable[BaseException]:
    seen = set()
    current: Optional[BaseException] = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def explain(error: BaseException) -> tuple[int, str]:
    """(exit code, one-line message) for any error a run can end with."""
    from dlt.common.configuration.exceptions import ConfigurationException
    from dlt.pipeline.exceptions import PipelineStepFailed

    for cause in _chain(error):
        if isinstance(cause, FineTuningSourceError):
            return cause.exit_code, _one_line(str(cause))
    for cause in _chain(error):
        if isinstance(cause, ConfigurationException):
            return EXIT_CONFIG, "Configuration error: " + _one_line(str(cause))[:300]
    if isinstance(error, PipelineStepFailed) and error.step in ("sync", "load"):
        root = list(_chain(error))[-1]
        if "Out of Memory Error" in str(root):
            return EXIT_DESTINATION, (
                "DuckDB ran out of memory while loading: raise --duckdb-memory-limit (default"
                " 128MB); the extracted rows are kept and the next run loads them"
            )
        return EXIT_DESTINATION, f"Destination error during {error.step}: " + _one_line(
            f"{type(root).__name__}: {root}"
        )[:300]
    root = list(_chain(error))[-1]
    return EXIT_UNEXPECTED, f"Unexpected error: {type(root).__name__}: {_one_line(str(root))[:300]}"


def _redact(text: str, secrets: Sequence[Optional[str]]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def _run(args: argparse.Namespace) -> int:
    if args.command == "sandbox":
        from pipelines.demo import serve_sandbox

        return serve_sandbox(args)
    if args.command == "demo":
        from pipelines.demo import run_demo

        return run_demo(args)
    if args.command == "sql":
        from pipelines.sql_command import render, run_query

        query = sys.stdin.read() if args.query == "-" else args.query
        names, rows = run_query(query, args.destination, args.duckdb_path, args.dataset)
        print(render(names, rows, args.output))
        return 0
    if args.command == "report":
        from pipelines.openai_fine_tuning_pipeline import existing_pipeline
        from pipelines.report import write_report

        if args.charts < 0:
            raise ConfigurationError(f"--charts must be 0 or more, got {args.charts}")
        pipeline = existing_pipeline(args.destination, args.duckdb_path, args.dataset)
        result = write_report(pipeline, args.out, args.job_ids, args.since, args.charts)
        print(
            f"Report written to {result.path} ({result.jobs} jobs, {result.charts} charts,"
            f" {result.bytes / 1024:,.0f} KB)"
        )
        return 0
    from pipelines.openai_fine_tuning_pipeline import load

    options = {}
    if args.job_ids:
        options["job_ids"] = args.job_ids
    if args.resources is not None:
        options["resources"] = args.resources.split(",")
    if args.page_size is not None:
        options["page_size"] = args.page_size
    if args.workers is not None:
        options["workers"] = args.workers
    summary = load(
        destination=args.destination,
        duckdb_path=args.duckdb_path,
        dataset=args.dataset,
        pipelines_dir=args.pipelines_dir,
        full_refresh=args.full_refresh,
        wait=args.wait,
        duckdb_memory_limit=args.duckdb_memory_limit,
        **options,
    )
    for line in summary.warnings():
        print(f"openai-ft: warning: {line}", file=sys.stderr)
    print("\n".join(summary.lines()))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of `openai-ft`; returns the exit code."""
    args = _parser().parse_args(argv)
    # dlt logs failures itself, with tracebacks: a user sees our one line unless --verbose
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING" if args.verbose else "CRITICAL")
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("openai-ft: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # every failure becomes one line and an exit code
        code, message = explain(error)
        secrets = [
            os.environ.get("OPENAI_API_KEY"),
            os.environ.get("SOURCES__OPENAI_FINE_TUNING__API_KEY"),
        ]
        if args.verbose:
            print(_redact(traceback.format_exc(), secrets), file=sys.stderr)
        print(f"openai-ft: error: {_redact(message, secrets)}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
