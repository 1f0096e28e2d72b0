"""`openai-ft report`: the self-contained HTML training report."""

from __future__ import annotations

import argparse

from pipelines.cli.options import READ_ENVIRONMENT, HelpFormatter, add_target, parse_date
from pipelines.errors import EXIT_CODES
from sources.openai_fine_tuning.errors import ConfigurationError


def add_parser(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
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
        "--since", type=parse_date, metavar="YYYY-MM-DD", help="only jobs created on or after"
    )
    report.add_argument(
        "--charts", type=int, default=20, metavar="N", help="chart the N most recent jobs"
    )
    add_target(report)


def run(args: argparse.Namespace) -> int:
    """Writes the report and says where."""
    from pipelines.analysis.report import write_report
    from pipelines.run import existing_pipeline

    if args.charts < 0:
        raise ConfigurationError(f"--charts must be 0 or more, got {args.charts}")
    pipeline = existing_pipeline(args.destination, args.duckdb_path, args.dataset)
    result = write_report(pipeline, args.out, args.job_ids, args.since, args.charts)
    print(
        f"Report written to {result.path} ({result.jobs} jobs, {result.charts} charts,"
        f" {result.bytes / 1024:,.0f} KB)"
    )
    return 0
