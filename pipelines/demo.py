"""`openai-ft demo` and `openai-ft sandbox`: the bundled OpenAI-compatible sandbox, no key."""

from __future__ import annotations

import argparse
import os
import shlex

from fake_openai import FineTuningWorld, SandboxServer
from fake_openai.faults import FaultPlan
from pipelines.openai_fine_tuning_pipeline import existing_pipeline, load
from pipelines.report import write_report
from pipelines.sql_command import render, run_query
from sources.openai_fine_tuning.errors import ConfigurationError

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


def run_demo(args: argparse.Namespace) -> int:
    """Serves generated data on a free loopback port, loads it, shows the best checkpoints and
    writes the training report."""
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
    print("\nBest checkpoint per job (view best_checkpoints):")
    print(render(*run_query(BEST_SQL, "duckdb", args.duckdb_path, args.dataset)))
    pipeline = existing_pipeline("duckdb", args.duckdb_path, args.dataset)
    report = write_report(pipeline, args.report)
    print(f"\nTraining report: {report.path} ({report.jobs} jobs, {report.charts} charts)")
    names, rows = run_query(LATEST_JOB_SQL, "duckdb", args.duckdb_path, args.dataset)
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


def serve_sandbox(args: argparse.Namespace) -> int:
    """Serves the sandbox in the foreground until Ctrl-C."""
    if args.rate_limit is not None and args.rate_limit <= 0:
        raise ConfigurationError("Invalid sandbox options: --rate-limit must be positive")
    try:
        world = FineTuningWorld(
            seed=args.seed,
            jobs=args.jobs,
            max_checkpoints=args.max_checkpoints,
            checkpoints_per_job=args.checkpoints_per_job,
            big_job_checkpoints=args.big_job_checkpoints,
            max_steps=args.max_steps,
            big_job_steps=args.big_job_steps or None,
        )
        sandbox = SandboxServer(
            world,
            api_key=args.api_key,
            port=args.port,
            latency=args.latency_ms / 1000,
            rate_limit=args.rate_limit,
            rate_burst=args.rate_burst,
        )
    except ValueError as error:
        raise ConfigurationError(f"Invalid sandbox options: {error}") from None
    if args.fault_rate:
        try:
            sandbox.faults = FaultPlan(
                rate=args.fault_rate,
                seed=args.fault_seed,
                kinds=args.fault_kinds.split(","),
                routes=args.fault_routes.split(",") if args.fault_routes else None,
            )
        except ValueError as error:
            raise ConfigurationError(f"Invalid sandbox faults: {error}") from None
        print(f"Injecting faults into {args.fault_rate:.0%} of requests: {args.fault_kinds}")
    if args.rate_limit:
        print(f"Admitting {args.rate_limit:g} requests/s; beyond that 429 with retry-after-ms")
    print(f"Sandbox at {sandbox.base_url} (controls under {sandbox.root_url}/_sandbox/)")
    print(f"  OPENAI_BASE_URL={sandbox.base_url} OPENAI_API_KEY={args.api_key} openai-ft load")
    try:
        sandbox.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0
