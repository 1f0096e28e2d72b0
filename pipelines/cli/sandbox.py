"""`openai-ft sandbox`: the bundled OpenAI-compatible sandbox, served in the foreground."""

from __future__ import annotations

import argparse

from fake_openai import FineTuningWorld, SandboxServer
from fake_openai.faults import FAULT_KINDS, ROUTE_KINDS, FaultPlan
from pipelines.cli.options import HelpFormatter
from pipelines.errors import EXIT_CODES
from sources.openai_fine_tuning.errors import ConfigurationError


def add_parser(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    sandbox = commands.add_parser(
        "sandbox",
        parents=[common],
        formatter_class=HelpFormatter,
        help="serve the OpenAI-compatible sandbox",
        description="Serves generated fine-tuning data on 127.0.0.1 as the OpenAI API does"
        " (also the Azure OpenAI paths). Controls under /_sandbox/: stats, truth, advance,"
        " finish, jobs, latency, faults, rate_limit (see docs/SANDBOX.md). Stops on Ctrl-C.",
        epilog=EXIT_CODES,
    )
    add = sandbox.add_argument
    add("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    add("--seed", type=int, default=7, help="seed of the generated data")
    add("--jobs", type=int, default=24, help="number of generated jobs")
    add("--max-checkpoints", type=int, default=8, help="most checkpoints of a generated job")
    add("--checkpoints-per-job", type=int, help="exactly this many checkpoints per job")
    add("--big-job-checkpoints", type=int, help="checkpoints of the oldest job")
    add("--max-steps", type=int, default=300, help="most training steps of a generated job")
    add(
        "--big-job-steps",
        type=int,
        default=1200,
        help="training steps of one finished job (0: no such job)",
    )
    add("--latency-ms", type=float, default=0.0, help="added to every /v1 response")
    add(
        "--rate-limit",
        type=float,
        metavar="RPS",
        help="requests per second admitted (token bucket); beyond it 429 with retry-after-ms",
    )
    add("--rate-burst", type=float, help="token bucket size (default: RPS)")
    add("--api-key", default="sk-sandbox", help="the key the sandbox accepts")
    add("--fault-rate", type=float, default=0.0, help="share of requests that fail, 0..1")
    add("--fault-seed", type=int, default=0, help="seed of the fault draws")
    add(
        "--fault-kinds",
        default=",".join(FAULT_KINDS),
        help="comma-separated; repeat one to weight it",
    )
    add("--fault-routes", help=f"comma-separated, from: {', '.join(ROUTE_KINDS)} (default: all)")


def run(args: argparse.Namespace) -> int:
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
