"""`openai-ft demo`: sample data from the bundled sandbox, loaded, queried and reported on (no
key, no network)."""

from __future__ import annotations

import argparse
import os
import shlex

from pipelines.cli.options import HelpFormatter, add_state
from pipelines.errors import EXIT_CODES

DEMO_KEY = "sk-sandbox-demo"
BEST_SQL = """
SELECT b.fine_tuning_job_id AS job_id, j.model, j.status, b.step_number, b.rule,
       round(b.value, 4) AS value
FROM best_checkpoints AS b JOIN jobs AS j ON j.id = b.fine_tuning_job_id
ORDER BY j.created_at DESC, j.id
"""
# the most recent job with a training loss curve, for the closing hint
LATEST_JOB_SQL = """
SELECT id FROM job_summary WHERE final_train_loss IS NOT NULL
ORDER BY created_at DESC, id LIMIT 1
"""


def add_parser(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
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
    add_state(demo)
    demo.add_argument(
        "--report",
        default="openai_fine_tuning_demo_report.html",
        metavar="PATH",
        help="where to write the training report",
    )
    demo.add_argument("--seed", type=int, default=7, help="seed of the sample data")
    demo.add_argument("--jobs", type=int, default=24, help="number of sample jobs")


def run(args: argparse.Namespace) -> int:
    """Serves generated data on a free loopback port, loads it, shows the best checkpoints and
    writes the training report."""
    # imported here: `openai-ft --help` and the other commands need none of it
    from fake_openai import FineTuningWorld, SandboxServer
    from pipelines.analysis.report import write_report
    from pipelines.analysis.sql import render, run_query
    from pipelines.run import existing_pipeline, load

    world = FineTuningWorld(seed=args.seed, jobs=args.jobs)
    with SandboxServer(world, api_key=DEMO_KEY) as sandbox:
        print(f"Sandbox serving {args.jobs} sample jobs at {sandbox.base_url}")
        summary = load(
            duckdb_path=args.duckdb_path,
            dataset=args.dataset,
            pipelines_dir=args.pipelines_dir,
            pipeline_name="openai_fine_tuning_demo",
            full_refresh=True,  # the demo always shows a complete load
            duckdb_memory_limit=args.duckdb_memory_limit,
            api_key=DEMO_KEY,
            base_url=sandbox.base_url,
        )
    print("\n".join(summary.lines()))
    target = ["--duckdb-path", args.duckdb_path] + (
        ["--dataset", args.dataset] if args.dataset != "openai_fine_tuning" else []
    )
    pipeline = existing_pipeline("duckdb", args.duckdb_path, args.dataset)
    print("\nBest checkpoint per job (view best_checkpoints):")
    print(render(*run_query(pipeline, BEST_SQL, args.duckdb_path)))
    report = write_report(pipeline, args.report)
    print(f"\nTraining report: {report.path} ({report.jobs} jobs, {report.charts} charts)")
    names, rows = run_query(pipeline, LATEST_JOB_SQL, args.duckdb_path)
    latest = rows[0][0] if rows else "ftjob-..."
    command = "openai-ft sql " + shlex.join(target)
    print("\nExplore further:")
    print(f"  {command} 'SELECT * FROM job_summary'")
    print(
        f'  {command} "SELECT step, train_loss, valid_loss FROM training_curves'
        f" WHERE fine_tuning_job_id = '{latest}' ORDER BY step\""
    )
    print(
        f'  {command} "SELECT shutdown_date, days_left, model, training_data_archived'
        " FROM model_lifecycle WHERE state = 'retiring' ORDER BY shutdown_date\""
    )
    print(f"  openai-ft report {shlex.join(target)} --out report.html")
    print(f"  openai-ft export {shlex.join(target)} --out training-data")
    print(f"  -- or in Python: duckdb.connect({os.path.abspath(args.duckdb_path)!r})")
    return 0
