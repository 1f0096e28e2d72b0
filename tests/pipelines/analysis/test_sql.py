"""`openai-ft sql`: a query on DuckDB or PostgreSQL, printed as a table, CSV or JSON."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import duckdb
import pytest

from pipelines.cli import main
from tests.helpers import held_by_another_process, locked_line

QUERY = "SELECT id, status, trained_tokens, created_at FROM jobs ORDER BY id"


def _sql(target, capsys, *args, stdin=None, monkeypatch=None):
    options = target.load_options()
    argv = ["sql", *args, "--destination", target.name, "--dataset", target.dataset]
    argv += ["--duckdb-path", options["duckdb_path"]]
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err.strip()


@pytest.fixture
def loaded(loaded_target):
    target, world = loaded_target
    return target, sorted(world.truth_jobs(), key=lambda j: j["id"])


def _iso(seconds):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, tz=UTC).isoformat()


def test_csv_and_json_hold_exactly_the_rows(loaded, capsys):
    target, jobs = loaded
    code, out, err = _sql(target, capsys, QUERY, "--format", "csv")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "id,status,trained_tokens,created_at"
    assert lines[1:] == [
        f"{j['id']},{j['status']},{j['trained_tokens'] if j['trained_tokens'] is not None else ''},"
        f"{_iso(j['created_at'])}"
        for j in jobs
    ]
    code, out, _ = _sql(target, capsys, QUERY, "--format", "json")
    assert code == 0
    assert json.loads(out) == [
        {
            "id": j["id"],
            "status": j["status"],
            "trained_tokens": j["trained_tokens"],
            "created_at": _iso(j["created_at"]),
        }
        for j in jobs
    ]


def test_table_is_aligned_and_counts_rows(loaded, capsys):
    target, jobs = loaded
    code, out, _ = _sql(target, capsys, "SELECT id, trained_tokens FROM jobs ORDER BY id")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["id", "trained_tokens"]
    assert set(lines[1]) == {"-", " "}
    width = len(lines[0])
    assert all(len(line) == width for line in lines[:-1])  # aligned columns
    for line, job in zip(lines[2:-1], jobs, strict=True):
        tokens = job["trained_tokens"]
        assert line.split() == [job["id"], "NULL" if tokens is None else str(tokens)]
    assert lines[-1] == f"({len(jobs)} rows)"


def test_query_from_stdin_and_the_views(loaded, capsys, monkeypatch):
    target, jobs = loaded
    code, out, _ = _sql(
        target,
        capsys,
        "--format",
        "csv",
        stdin="SELECT count(*) AS n FROM job_summary",
        monkeypatch=monkeypatch,
    )
    assert code == 0 and out.splitlines() == ["n", str(len(jobs))]


def test_several_statements_each_print_their_rows_in_turn(loaded, capsys, monkeypatch):
    # as the README's analyst SQL is run: a file of queries on stdin, `;` between them (a `;`
    # inside a string or a comment separates nothing)
    target, jobs = loaded
    query = "SELECT count(*) AS n FROM jobs;\n-- next; the text\nSELECT 'a;b' AS s;\n-- end\n"
    code, out, err = _sql(target, capsys, stdin=query, monkeypatch=monkeypatch)
    assert (code, err) == (0, "")
    first, second = out.rstrip("\n").split("\n\n")
    assert first.splitlines() == ["  n", "---", f"{len(jobs):3d}", "(1 row)"]
    assert second.splitlines() == ["s", "---", "a;b", "(1 row)"]


def test_several_statements_in_csv_or_json_is_exit_2_before_any_runs(loaded, capsys):
    target, _ = loaded
    for output in ("csv", "json"):
        query = "CREATE TABLE refused_probe AS SELECT 1 AS one; SELECT 2"
        code, out, err = _sql(target, capsys, query, "--format", output)
        assert (code, out) == (2, "")
        assert err == (
            f"openai-ft: error: --format {output} prints one statement's rows; the query has 2"
            " statements (run them one at a time, or use --format table)"
        )
    code, _, err = _sql(target, capsys, "SELECT * FROM refused_probe")
    assert code == 2 and "refused_probe" in err  # the first statement never ran


def test_a_query_that_is_only_a_comment_is_exit_2(loaded, capsys):
    target, _ = loaded
    code, out, err = _sql(target, capsys, "-- nothing; here")
    assert (code, out) == (2, "")
    assert err == "openai-ft: error: No statement in the query '-- nothing; here'"


def test_a_failing_query_is_one_line_and_exit_2(loaded, capsys):
    target, _ = loaded
    code, out, err = _sql(target, capsys, "SELECT * FROM no_such_table")
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1
    assert err.startswith("openai-ft: error: The query failed: ")
    assert "no_such_table" in err


def test_no_duckdb_file_is_exit_5_and_creates_nothing(tmp_path, capsys):
    missing = tmp_path / "nope.duckdb"
    code = main(["sql", "SELECT 1", "--duckdb-path", str(missing)])
    err = capsys.readouterr().err.strip()
    assert code == 5 and not missing.exists()
    assert err == (
        f"openai-ft: error: No DuckDB file at '{missing}': run `openai-ft load` first, or point"
        " --duckdb-path at the file it wrote"
    )


def test_a_file_a_failed_first_load_left_says_to_load_first(sandbox, tmp_path, capsys):
    # a newcomer's first load with a wrong key (exit 3) leaves the DuckDB file, no tables
    path = tmp_path / "ft.duckdb"
    base = ["--duckdb-path", str(path)]
    load = ["load", *base, "--pipelines-dir", str(tmp_path / "pl")]
    env = {"OPENAI_BASE_URL": sandbox.base_url, "OPENAI_API_KEY": "sk-wrong"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        assert main(load) == 3
    assert path.exists()
    capsys.readouterr()
    code = main(["sql", "SELECT * FROM job_summary", *base])
    out, err = capsys.readouterr()
    assert (code, out) == (5, "")
    assert err.strip() == (
        "openai-ft: error: The dataset 'openai_fine_tuning' has no tables yet: run `openai-ft"
        " load` first (a load that failed before writing leaves none)"
    )


def test_a_file_taken_after_the_check_is_said_the_same(tmp_path):
    """Another process takes the file after `existing_pipeline`'s check: what dlt's client
    raises then ("check your credentials ... internet connection", wrapping DuckDB's lock
    error) is recognised, and said as `load` says it."""
    from pipelines.errors import duckdb_locked
    from pipelines.run.destinations import make_pipeline

    path = tmp_path / "held.duckdb"
    duckdb.connect(str(path)).close()
    pipeline = make_pipeline(duckdb_path=str(path), pipelines_dir=str(tmp_path / "p"))
    with held_by_another_process(path) as pid:
        with pytest.raises(Exception) as raised:  # noqa: B017 - dlt's own, whatever it is
            with pipeline.sql_client() as client:
                client.execute_sql("SELECT 1")
    locked = duckdb_locked(raised.value, str(path))
    assert locked is not None
    assert f"openai-ft: error: {locked}" == locked_line(path, pid)


def test_empty_query_is_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("  \n"))
    assert main(["sql", "--duckdb-path", str(tmp_path / "x.duckdb")]) == 2
    assert capsys.readouterr().err.strip() == (
        "openai-ft: error: No query: pass it as an argument or on standard input"
    )


def test_output_cut_short_by_head_is_not_an_error(loaded):
    """`openai-ft sql ... | head -1`: the closed pipe ends the output, with exit 0."""
    import os

    target, jobs = loaded
    options = target.load_options()
    command = [sys.executable, "-m", "pipelines.cli", "sql", "SELECT * FROM events"]
    command += ["--destination", target.name, "--dataset", target.dataset]
    command += ["--duckdb-path", options["duckdb_path"], "--format", "csv"]
    reader = subprocess.Popen(["head", "-n", "1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    writer = subprocess.run(command, stdout=reader.stdin, stderr=subprocess.PIPE, env=os.environ)
    reader.stdin.close()
    first = reader.stdout.read().decode()
    reader.wait()
    assert writer.returncode == 0 and writer.stderr == b""
    assert first.startswith("id,") and first.count("\n") == 1


@pytest.mark.postgres
def test_wrong_destination_password_is_exit_5_and_one_line(postgres_dsn, capsys, monkeypatch):
    from urllib.parse import urlsplit

    parts = urlsplit(postgres_dsn)
    wrong = parts._replace(netloc=f"{parts.username}:wrong-pw-3c2b1a@{parts.hostname}:{parts.port}")
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", wrong.geturl())
    code = main(["sql", "SELECT 1", "--destination", "postgres"])
    err = capsys.readouterr().err.strip()
    assert code == 5 and len(err.splitlines()) == 1 and "wrong-pw-3c2b1a" not in err
    assert err.startswith(
        "openai-ft: error: Could not query the postgres destination: OperationalError:"
    )
    assert "password authentication failed" in err


@pytest.mark.parametrize("read_only", [False, True], ids=["writer", "reader"])
def test_a_file_held_by_another_process_is_exit_5_naming_its_pid(tmp_path, capsys, read_only):
    path = tmp_path / "held.duckdb"
    duckdb.connect(str(path)).close()
    with held_by_another_process(path, read_only) as pid:
        code = main(["sql", "SELECT 1", "--duckdb-path", str(path)])
    out, err = capsys.readouterr()
    assert code == 5 and out == ""
    assert err.splitlines() == [locked_line(path, pid)]
