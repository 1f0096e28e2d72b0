"""`openai-ft`: load fine-tuning history, query it, report on it, run the demo or the sandbox.

Errors print as one line on stderr (a traceback only with `--verbose`) and set the exit code
(`pipelines/exits.py`).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Any, Dict, List, Optional, Sequence

from pipelines.cli_parser import parser
from pipelines.exits import EXIT_INTERRUPTED, EXIT_TERMINATED, explain
from pipelines.signals import handle_signals, mark_reported
from sources.openai_fine_tuning.errors import ConfigurationError


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
        try:
            print(render(names, rows, args.output), flush=True)
        except BrokenPipeError:  # `openai-ft sql ... | head`: the reader has what it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
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
    if args.command == "export":
        return _export(args)
    return _load(args)


def _export(args: argparse.Namespace) -> int:
    from pipelines.destinations import existing_pipeline
    from pipelines.export import export_files
    from pipelines.guards import DestinationError

    pipeline = existing_pipeline(args.destination, args.duckdb_path, args.dataset)
    result = export_files(pipeline, args.out, args.job_ids)
    size = sum(entry["bytes"] for entry in result.written)
    print(
        f"Exported {len(result.written)} file(s), {size:,} bytes, to {result.out}"
        " (manifest.json lists them)"
    )
    if result.not_archived:
        print(
            f"openai-ft: warning: {len(result.not_archived)} file(s) the jobs name are not in the"
            " archive (deleted upstream before they were read, or not loaded yet):"
            f" {', '.join(result.not_archived)}",
            file=sys.stderr,
        )
    if result.failed:
        raise DestinationError(
            f"{len(result.failed)} file(s) could not be written exactly: {'; '.join(result.failed)}"
        )
    return 0


def _load(args: argparse.Namespace) -> int:
    from contextlib import nullcontext

    from pipelines.openai_fine_tuning_pipeline import load
    from pipelines.progress import ProgressLine
    from pipelines.summary import LoadSummary
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
        if args.json:  # stdout holds the one JSON object, also on failure
            summary.exit_code, summary.error = explain(error)
            print(_redact(summary.to_json(), _secrets()))
        raise
    for line in summary.warnings():
        print(f"openai-ft: warning: {line}", file=sys.stderr)
    print(summary.to_json() if args.json else "\n".join(summary.lines()))
    return 0


def _secrets() -> List[Optional[str]]:
    names = (
        "OPENAI_API_KEY",
        "AZURE_OPENAI_API_KEY",
        "AZURE_OPENAI_AD_TOKEN",
        "SOURCES__OPENAI_FINE_TUNING__API_KEY",
        "SOURCES__OPENAI_FINE_TUNING__AZURE_AD_TOKEN",
    )
    return [os.environ.get(name) for name in names]


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of `openai-ft`; returns the exit code."""
    top, commands = parser()
    args, extra = top.parse_known_args(argv)
    if extra:  # a mistyped flag: show the usage of the command it was given to
        commands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    # dlt logs failures itself, with tracebacks: a user sees our one line unless --verbose
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING" if args.verbose else "CRITICAL")
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    try:
        with handle_signals():
            return _run(args)
    except (Exception, KeyboardInterrupt) as error:  # one line and an exit code, always
        code, message = explain(error)
        if args.verbose:
            print(_redact(traceback.format_exc(), _secrets()), file=sys.stderr)
        print(f"openai-ft: error: {_redact(message, _secrets())}", file=sys.stderr)
        mark_reported()
        return code


def run() -> None:
    """The `openai-ft` command: `main()`, then exit with its code.

    After a signal, worker threads may still be blocked where the interrupted main thread
    left them, and the interpreter would wait for them at exit: the process ends without
    waiting (the run is over and reported; see `pipelines/signals.py`).
    """
    code = main()
    if code in (EXIT_INTERRUPTED, EXIT_TERMINATED):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    run()
