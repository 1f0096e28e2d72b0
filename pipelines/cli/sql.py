"""`openai-ft sql`: a query on the loaded dataset, printed as a table, CSV or JSON."""

from __future__ import annotations

import argparse
import sys

from pipelines.analysis.sql import FORMATS
from pipelines.cli.options import READ_ENVIRONMENT, HelpFormatter, add_target
from pipelines.errors import EXIT_CODES


def add_parser(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
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
        "query",
        nargs="?",
        default="-",
        help="the SQL (statements separated by ;, each one's rows printed in turn); omit it"
        " (or -) to read it from stdin",
    )
    sql.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        dest="output",
        help="output format",
    )
    add_target(sql)


def run(args: argparse.Namespace) -> int:
    """Runs the query (the argument, or stdin) and prints the rows."""
    from pipelines.analysis.sql import check_query, render, run_queries
    from pipelines.run import existing_pipeline

    query = sys.stdin.read() if args.query == "-" else args.query
    check_query(query)
    pipeline = existing_pipeline(args.destination, args.duckdb_path, args.dataset)
    single = None if args.output == "table" else f"--format {args.output}"
    results = run_queries(pipeline, query, args.duckdb_path, one_statement_for=single)
    # several statements: each one's rows in turn, a blank line between (`| head` cutting
    # the output short is handled for every command: `pipelines/cli/output.py`)
    print("\n\n".join(render(names, rows, args.output) for names, rows in results), flush=True)
    return 0
