"""`openai-ft demo` and `openai-ft sandbox`: the bundled OpenAI-compatible sandbox, no key."""

from __future__ import annotations

import argparse
import os

import duckdb

from fake_openai import FineTuningWorld, SandboxServer
from fake_openai.faults import FaultPlan
from pipelines.openai_fine_tuning_pipeline import load
from pipelines.queries import best_checkpoint_sql
from sources.openai_fine_tuning.errors import ConfigurationError

DEMO_KEY = "sk-sandbox-demo"


def run_demo(args: argparse.Namespace) -> int:
    """Serves generated data on a free loopback port, loads it, and shows the best checkpoints."""
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
    sql = best_checkpoint_sql(args.dataset)
    with duckdb.connect(args.duckdb_path, read_only=True) as connection:
        print("\nBest checkpoint per job (lowest full_valid_loss, else train_loss):")
        connection.sql(sql).show(max_width=160, max_rows=100)
    path = os.path.abspath(args.duckdb_path)
    print(f"\nExplore further:\n  duckdb {path}\n  -- or in Python: duckdb.connect({path!r})")
    print(f"  SELECT * FROM {args.dataset}.checkpoints LIMIT 10;")
    print(f"  -- the query above:{sql.rstrip()};")
    return 0


def serve_sandbox(args: argparse.Namespace) -> int:
    """Serves the sandbox in the foreground until Ctrl-C."""
    world = FineTuningWorld(
        seed=args.seed,
        jobs=args.jobs,
        max_checkpoints=args.max_checkpoints,
        checkpoints_per_job=args.checkpoints_per_job,
        big_job_checkpoints=args.big_job_checkpoints,
    )
    sandbox = SandboxServer(
        world, api_key=args.api_key, port=args.port, latency=args.latency_ms / 1000
    )
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
    print(f"Sandbox at {sandbox.base_url} (controls under {sandbox.root_url}/_sandbox/)")
    print(f"  OPENAI_BASE_URL={sandbox.base_url} OPENAI_API_KEY={args.api_key} openai-ft load")
    try:
        sandbox.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0
