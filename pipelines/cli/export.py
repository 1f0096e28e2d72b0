"""`openai-ft export`: the archived training files, written back out byte for byte."""

from __future__ import annotations

import argparse
import sys

from pipelines.cli.options import READ_ENVIRONMENT, HelpFormatter, add_target
from pipelines.errors import EXIT_CODES, DestinationError


def add_parser(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
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
    add_target(export)


def run(args: argparse.Namespace) -> int:
    """Writes the files back out; names what it could not write exactly (exit 5)."""
    from pipelines.analysis.export import export_files
    from pipelines.run import existing_pipeline

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
