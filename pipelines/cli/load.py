"""`openai-ft load`: one incremental load (or a full reload), its summary printed."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Dict

from pipelines.cli.options import ENVIRONMENT, HelpFormatter, add_state, add_target, redact
from pipelines.errors import EXIT_CODES, DuckDBLockedError, explain
from sources.openai_fine_tuning.settings import RESOURCES


def add_parser(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
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
    add_target(load)
    add_state(load)
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


def run(args: argparse.Namespace) -> int:
    """Runs one load and prints its summary (text, or one JSON object with `--json`)."""
    from contextlib import nullcontext

    from pipelines.cli.progress import ProgressLine
    from pipelines.run import load
    from pipelines.run.summary import LoadSummary
    from sources.openai_fine_tuning.stats import RunStats

    options: Dict[str, Any] = {}
    if args.job_ids:
        options["job_ids"] = args.job_ids
    if args.resources is not None:
        options["resources"] = args.resources.split(",")
    if args.page_size is not None:
        options["page_size"] = args.page_size
    if args.workers is not None:
        options["workers"] = args.workers
    summary, stats = LoadSummary(), RunStats()
    live = args.progress or sys.stderr.isatty()
    try:
        with ProgressLine(stats) if live else nullcontext():
            load(
                destination=args.destination,
                duckdb_path=args.duckdb_path,
                dataset=args.dataset,
                pipelines_dir=args.pipelines_dir,
                full_refresh=args.full_refresh,
                pipeline_name=args.pipeline_name,
                wait=args.wait,
                wait_timeout=args.wait_timeout,
                duckdb_memory_limit=args.duckdb_memory_limit,
                summary=summary,
                stats=stats,
                **options,
            )
    except (Exception, KeyboardInterrupt) as error:
        said = error
        if isinstance(error, DuckDBLockedError) and not args.wait:
            # the command has a way to wait that `sql` and `report` lack: say it
            said = DuckDBLockedError(f"{error}, or pass --wait to wait for it")
        if args.json:  # stdout holds the one JSON object, also on failure
            summary.exit_code, summary.error = explain(said)
            print(redact(summary.to_json()))
        if said is not error:
            raise said from None
        raise
    for line in summary.warnings():
        print(f"openai-ft: warning: {line}", file=sys.stderr)
    print(summary.to_json() if args.json else "\n".join(summary.lines()))
    return 0
