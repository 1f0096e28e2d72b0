"""`openai-ft`: load fine-tuning history, query it, report on it, export its training files,
run the demo or the sandbox. One module per command (`pipelines/cli/<command>.py`: its
parser and its `run`); this one parses, dispatches and turns every failure into one line on
stderr (a traceback only with `--verbose`) and an exit code (`pipelines/errors.py`).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from types import ModuleType
from typing import Dict, List, Optional, Tuple

from pipelines.cli import demo, export, load, report, sandbox, sql
from pipelines.cli.options import HelpFormatter, redact, version
from pipelines.cli.output import stdout_reader_may_leave
from pipelines.errors import (
    EXIT_CODES,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    explain,
)
from pipelines.run.exiting import freeze_heap
from pipelines.run.signals import handle_signals, mark_reported

COMMANDS: Dict[str, ModuleType] = {
    "load": load,
    "sql": sql,
    "report": report,
    "export": export,
    "demo": demo,
    "sandbox": sandbox,
}


def parser() -> Tuple[argparse.ArgumentParser, Dict[str, argparse.ArgumentParser]]:
    """The command's parser, and each subcommand's (to show its usage on a mistyped flag)."""
    top = argparse.ArgumentParser(
        prog="openai-ft",
        formatter_class=HelpFormatter,
        description="Archive OpenAI fine-tuning history into DuckDB (or any dlt destination),"
        " query it and report on it.",
        epilog=EXIT_CODES,
    )
    top.add_argument("--version", action="version", version=version())
    top.add_argument("--verbose", action="store_true", help="show tracebacks on errors")
    # --verbose also after the command; SUPPRESS keeps the top-level value when absent
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show tracebacks on errors and dlt's own warnings",
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS.values():
        module.add_parser(commands, common)
    return top, dict(commands.choices)


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of `openai-ft`; returns the exit code."""
    top, commands = parser()
    args, extra = top.parse_known_args(argv)
    if extra:  # a mistyped flag: show the usage of the command it was given to
        commands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    # dlt logs failures itself, with tracebacks: a user sees our one line unless --verbose
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING" if args.verbose else "CRITICAL")
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    with stdout_reader_may_leave():  # `| head`: the output is cut, the command goes on
        try:
            with handle_signals():
                return COMMANDS[args.command].run(args)
        except (Exception, KeyboardInterrupt) as error:  # one line and an exit code, always
            code, message = explain(error)
            if args.verbose:
                print(redact(traceback.format_exc()), file=sys.stderr)
            print(f"openai-ft: error: {redact(message)}", file=sys.stderr)
            mark_reported()
            return code


def run() -> None:
    """The `openai-ft` command: `main()`, then exit with its code.

    After a signal, worker threads may still be blocked where the interrupted main thread
    left them, and the interpreter would wait for them at exit: the process ends without
    waiting (the run is over and reported; see `pipelines/run/signals.py`).
    """
    code = main()
    if code in (EXIT_INTERRUPTED, EXIT_TERMINATED):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    freeze_heap()
    sys.exit(code)


if __name__ == "__main__":
    run()
