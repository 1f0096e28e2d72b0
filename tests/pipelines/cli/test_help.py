"""The command line explains itself: defaults, environment, exit codes, version, usage."""

from __future__ import annotations

import argparse
import re
from importlib import metadata

import dlt
import pytest

from pipelines.cli import main
from pipelines.cli.main import parser

COMMANDS = ("load", "sql", "report", "demo", "sandbox")
EXIT_LINES = ("0 success", "2 configuration or input", "130 interrupted (SIGINT)", "143 terminated")


def _help(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as done:
        main([*argv, "--help"])
    assert done.value.code == 0
    return " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_every_default_and_the_exit_codes(command, capsys):
    text = _help(capsys, command)
    packed = "".join(text.split())  # help wraps long values anywhere
    _, commands = parser()
    shown = 0
    for action in commands[command]._actions:
        default = action.default
        if action.help and default not in (None, False, argparse.SUPPRESS, []):
            assert f"default:{default}".replace(" ", "") in packed, action.dest
            shown += 1
    assert shown >= 2
    for line in EXIT_LINES:
        assert line in text


@pytest.mark.parametrize("command", ["load", "sql", "report"])
def test_help_names_the_environment_variables(command, capsys):
    text = _help(capsys, command)
    assert "DESTINATION__<NAME>__CREDENTIALS" in text
    if command == "load":
        for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AZURE_OPENAI_API_KEY", "OPENAI_ORG_ID"):
            assert name in text


def test_load_help_shows_the_wait_timeout_and_pipeline_name_defaults(capsys):
    text = _help(capsys, "load")
    assert "how long --wait waits before giving up (default: 600)" in text
    assert "(default: openai_fine_tuning_ plus a digest of the destination target" in text


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    own = metadata.version("dlt-openai-fine-tuning")
    assert capsys.readouterr().out == f"openai-ft {own} (dlt {dlt.__version__})\n"


def test_a_mistyped_flag_prints_the_subcommand_usage(capsys):
    with pytest.raises(SystemExit) as done:
        main(["load", "--duckdb-pth", "x.duckdb"])
    assert done.value.code == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == ""
    assert lines[0].startswith("usage: openai-ft load [-h]")
    assert lines[-1] == "openai-ft load: error: unrecognized arguments: --duckdb-pth x.duckdb"


def test_progress_line_on_stderr_when_asked(cli, sandbox, world):
    sandbox.latency = 0.3  # the run lasts a few of the line's half-second updates
    code, out, err = cli("--progress")
    assert code == 0
    updates = [part.strip() for part in err.split("\r") if part.strip()]
    assert updates, "no progress line"
    line = re.compile(
        r"jobs (\d+)/(\d+) · (\w+ [\d,]+ · )*requests [\d,]+( \(\d+ retried\))? · \d+ s"
    )
    matches = [line.fullmatch(update) for update in updates]
    assert all(matches), updates
    jobs = len(world.truth_jobs())
    assert all(int(m.group(1)) <= int(m.group(2)) <= jobs for m in matches)


def test_no_progress_line_when_not_asked_and_not_a_terminal(cli, sandbox):
    sandbox.latency = 0.1
    code, out, err = cli()
    assert (code, err) == (0, "")


def test_help_and_version_start_without_dlt():
    """An hourly job and a user typing `--help` should not wait for dlt, DuckDB, Arrow or
    matplotlib to import: the command loads them only for the work that needs them."""
    code = (
        "from pipelines.cli import main\n"
        "for args in (['--help'], ['--version'], ['load', '--help'], ['export', '--help']):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit:\n"
        "        pass\n"
    )
    assert _imported_after(code, ("dlt", "duckdb", "pyarrow", "matplotlib", "requests")) == []


def _imported_after(code: str, modules: tuple) -> list:
    """Which of `modules` a fresh interpreter has imported after running `code`."""
    import json
    import subprocess
    import sys

    check = (
        "\nimport json, sys\n"
        f"print(json.dumps(sorted(m for m in {modules!r} if m in sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code + check], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_loader_and_the_source_import_without_arrow_or_duckdb():
    """A rerun imports pyarrow (with numpy) and DuckDB while the job list is read ahead, so
    importing the loader (the source with it) and building the source must not import them
    (DESIGN.md "Start-up")."""
    code = (
        "from pipelines.run.loader import load\n"
        "from sources.openai_fine_tuning import build\n"
        "build(api_key='sk-x', base_url='http://127.0.0.1:9/v1')\n"
    )
    assert _imported_after(code, ("duckdb", "pyarrow", "numpy")) == []
