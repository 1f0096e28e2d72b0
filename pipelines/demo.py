"""`openai-ft demo` and `openai-ft sandbox`: the bundled OpenAI-compatible sandbox, no key."""

from __future__ import annotations

import argparse
import os

import duckdb

from fake_openai import FineTuningWorld, SandboxServer
from fake_openai.faults import FaultPlan
from pipelines.openai_fine_tuning_pipeline import load
from pipelines.queries import best_checkpoint_sql, loss_curve_sql
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
    print(f"  -- the loss curve of the latest job, every step:{loss_curve_sql(args.dataset)};")
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
