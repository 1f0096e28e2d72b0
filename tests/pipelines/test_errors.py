"""Each bad input or misbehaving server ends a run with one clear line and a known exit code."""

from __future__ import annotations

import re

import duckdb
import pytest

from pipelines.cli import main
from tests.helpers import (
    DATASET,
    Loader,
    assert_history_equal_truth,
    first_load_routes,
    training_lines,
    training_truth,
)


def _only_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_missing_key(cli):
    code, out, err = cli(env={"OPENAI_API_KEY": None})
    assert code == 2 and out == ""
    assert _only_line(err) == (
        "openai-ft: error: No OpenAI API key: set sources.openai_fine_tuning.api_key in"
        " .dlt/secrets.toml or the OPENAI_API_KEY environment variable"
    )


def test_blank_key_counts_as_missing(cli):
    code, _, err = cli(env={"OPENAI_API_KEY": "   "})
    assert code == 2 and "No OpenAI API key" in err


def test_wrong_key_401_never_prints_the_key(cli):
    wrong = "sk-wrong-key-9d8c7b6a5f4e3d2c1b0a"
    code, out, err = cli("--verbose", env={"OPENAI_API_KEY": wrong})
    assert code == 3
    assert err.strip().splitlines()[-1] == (
        "openai-ft: error: The API rejected the key (401 Unauthorized) at GET"
        " /v1/fine_tuning/jobs: check sources.openai_fine_tuning.api_key or OPENAI_API_KEY"
    )
    assert wrong not in out + err and wrong[-8:] not in out + err


def test_unknown_job_404_names_it(cli):
    code, _, err = cli("--job", "ftjob-doesnotexist")
    assert code == 2
    assert _only_line(err) == (
        "openai-ft: error: Fine-tuning job 'ftjob-doesnotexist' was not found (404) for this"
        " key and organization: check --job / sources.openai_fine_tuning.job_ids"
    )


@pytest.mark.parametrize("size", ["0", "101", "-5"])
def test_page_size_out_of_range(cli, size):
    code, _, err = cli("--page-size", size)
    assert code == 2
    assert _only_line(err) == (
        f"openai-ft: error: page_size must be between 1 and 100, got {size}"
        " (sources.openai_fine_tuning.page_size)"
    )


def test_negative_wait_timeout(cli, sandbox):
    code, _, err = cli("--wait", "--wait-timeout", "-5")
    assert code == 2 and sandbox.stats.total == 0
    assert _only_line(err) == "openai-ft: error: --wait-timeout must be 0 or more seconds, got -5.0"


def test_page_size_from_config_out_of_range(cli):
    code, _, err = cli(env={"SOURCES__OPENAI_FINE_TUNING__PAGE_SIZE": "500"})
    assert code == 2 and "page_size must be between 1 and 100, got 500" in err


@pytest.mark.parametrize("url", ["not a url", "ftp://example.com/v1", "http://"])
def test_invalid_base_url(cli, url):
    code, _, err = cli(env={"OPENAI_BASE_URL": url})
    assert code == 2
    assert _only_line(err) == (
        f"openai-ft: error: Invalid base URL {url!r}: expected http(s)://host[:port]/path"
        " (sources.openai_fine_tuning.base_url or OPENAI_BASE_URL)"
    )


def test_base_url_credentials_are_redacted(cli):
    code, _, err = cli(env={"OPENAI_BASE_URL": "ftp://user:hunter2secret@example.com/v1"})
    assert code == 2 and "hunter2secret" not in err and "***@example.com" in err


def test_base_url_with_a_query_string_is_refused_and_its_key_kept_out(cli, sandbox, tmp_path):
    secret = "sk-querysecret-5f4e3d"
    url = f"{sandbox.base_url}?api_key={secret}"
    code, out, err = cli(env={"OPENAI_BASE_URL": url})
    assert code == 2
    line = _only_line(err)
    assert line.startswith("openai-ft: error: Invalid base URL ") and secret not in out + err
    assert line.endswith(
        ": it must not carry a query string or fragment; put the key in"
        " sources.openai_fine_tuning.api_key (or OPENAI_API_KEY) and the Azure API version in"
        " api_version"
    )
    assert sandbox.stats.total == 0
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert not [p for p in written if secret.encode() in p.read_bytes()]


def test_connection_refused(cli, unused_port):
    code, _, err = cli(
        env={
            "OPENAI_BASE_URL": f"http://user:pw-secret@127.0.0.1:{unused_port}/v1",
            "SOURCES__OPENAI_FINE_TUNING__MAX_ATTEMPTS": "2",
        }
    )
    assert code == 4 and "pw-secret" not in err
    assert _only_line(err) == (
        "openai-ft: error: GET /v1/fine_tuning/jobs failed after 2 attempts: connection refused"
        f" (http://127.0.0.1:{unused_port})"
    )


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        (
            "html",
            "answered 200 with a non-JSON body (text/html):"
            " '<html><body><h1>502 Bad Gateway</h1></body></html>'",
        ),
        (
            "empty_page",
            "answered has_more: true with an empty page; stopped to avoid paging forever",
        ),
        ("no_data", "answered a list with no 'data' list"),
        ("data_not_list", "answered a list with 'data' of type dict"),
    ],
)
def test_misbehaving_checkpoint_pages(cli, sandbox, world, mode, message):
    sandbox.misbehave = {"checkpoints": mode}
    code, _, err = cli()
    assert code == 4
    line = _only_line(err)
    # jobs are read in parallel: whichever job's page came first names the failure
    match = re.fullmatch(
        r"openai-ft: error: GET /v1/fine_tuning/jobs/(ftjob-\w+)/checkpoints (.*)", line
    )
    assert match and match.group(1) in world.job_ids() and match.group(2) == message


def test_repeated_cursor_stops(cli, sandbox):
    sandbox.misbehave = {"jobs": "repeat_cursor"}
    code, _, err = cli("--page-size", "5")
    assert code == 4
    assert _only_line(err).startswith(
        "openai-ft: error: GET /v1/fine_tuning/jobs answered has_more: true but repeated the"
        " cursor 'ftjob-"
    )
    assert err.strip().endswith("; stopped to avoid paging forever")
    assert sandbox.stats.by_route["GET /v1/fine_tuning/jobs"] == 2


@pytest.mark.parametrize("field", ["id", "created_at"])
def test_checkpoint_without_required_field(cli, sandbox, field):
    sandbox.misbehave = {"checkpoints": f"item_without_{field}"}
    code, _, err = cli()
    assert code == 4
    expected = "without an 'id'" if field == "id" else "without an integer 'created_at' (got None)"
    assert expected in _only_line(err)


def test_duckdb_file_named_like_dataset(cli, tmp_path):
    code, _, err = cli("--duckdb-path", str(tmp_path / f"{DATASET}.duckdb"))
    assert code == 2
    assert _only_line(err) == (
        f"openai-ft: error: The DuckDB file '{DATASET}.duckdb' is named like the dataset"
        f" '{DATASET}': DuckDB could not tell the catalog from the schema; choose another"
        " --duckdb-path or --dataset"
    )


def test_failed_run_loads_nothing_and_keeps_state(cli, sandbox, world, tmp_path):
    sandbox.misbehave = {"checkpoints": "html"}
    code, _, _ = cli()
    assert code == 4
    with duckdb.connect(str(tmp_path / "ft.duckdb")) as con:
        tables = con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [DATASET]
        ).fetchall()
    assert tables == []

    sandbox.misbehave = {}
    sandbox.stats.reset()
    code, out, _ = cli()
    assert code == 0
    # nothing advanced: the rerun is a complete first load
    assert sandbox.stats.by_route == first_load_routes(world)
    assert_history_equal_truth(Loader(sandbox, tmp_path), world)


def test_success_prints_summary(cli, world, tmp_path):
    code, out, err = cli()
    assert code == 0 and err == ""
    lines = out.strip().splitlines()
    assert lines[0].endswith(f"ft.duckdb, dataset {DATASET}")
    events = [e for evs in world.truth_events().values() for e in evs]
    metrics = [e for e in events if e["type"] == "metrics"]
    graders = sum(len(e["data"].get("scores", {}).get("graders", ())) for e in metrics)
    assert lines[1] == (
        f"  jobs seen: 12   rows written: jobs 12, checkpoints {len(world.truth_checkpoints())},"
        f" events {len(events):,}, step_metrics {len(metrics):,},"
        f" step_grader_scores {graders}, files {len(world.truth_files())},"
        f" results {len(world.truth_results()):,},"
        f" training_examples {training_lines(world):,}, models {len(world.truth_models())}"
    )
    assert lines[2].startswith(f"  requests: {sum(first_load_routes(world).values())}   elapsed: ")
    terminal = sum(j["status"] in ("succeeded", "failed", "cancelled") for j in world.truth_jobs())
    where = re.escape(str(tmp_path / "pipelines"))
    assert re.fullmatch(
        rf"  pipeline openai_fine_tuning_[0-9a-f]{{8}} in {where}"
        rf"   jobs still open: {12 - terminal}, settled: {terminal}",
        lines[3],
    ), lines[3]
    invalid = sum(
        not row["valid_json"] for _, rows in training_truth(world).values() for row in rows
    )
    assert lines[4:6] == [
        "  files deleted or expired (404, not requested again): 1",
        f"  training lines that are not JSON (kept in training_examples, valid_json false):"
        f" {invalid}",
    ]
    assert re.fullmatch(  # exact counts: tests/test_models.py
        r"  fine-tuned models that stop serving within 90 days: \d+ \(\d+ of them checkpoints\),"
        r" the first on \d{4}-\d\d-\d\d; \d+ without archived training data \(view"
        r" model_lifecycle\)",
        lines[6],
    ), lines[6]
    assert len(lines) == 7


def test_organization_and_project_headers_are_sent(cli, sandbox, world):
    code, _, err = cli(
        env={"OPENAI_ORG_ID": world.organization_id, "OPENAI_PROJECT_ID": "proj_sandbox"}
    )
    assert code == 0, err
    assert sandbox.stats.scopes == {(world.organization_id, "proj_sandbox")}


@pytest.mark.parametrize(
    ("env", "denied"),
    [
        ({"OPENAI_ORG_ID": "org-other"}, "You do not have access to organization org-other."),
        (
            {"SOURCES__OPENAI_FINE_TUNING__PROJECT": "proj_other"},
            "You do not have access to project proj_other.",
        ),
    ],
)
def test_no_access_to_organization_or_project_403(cli, env, denied):
    code, _, err = cli(env=env)
    assert code == 3
    assert _only_line(err) == (
        "openai-ft: error: Access denied (403 Forbidden) at GET /v1/fine_tuning/jobs: the key has"
        f" no access to the configured organization or project ({denied})"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fault-rate", "0.2", "--fault-kinds", "500,nope"], "unknown fault kinds ['nope']"),
        (["--fault-rate", "1.5"], "fault rate must be within 0..1, got 1.5"),
        (["--fault-rate", "0.1", "--fault-routes", "files"], "unknown fault routes ['files']"),
    ],
)
def test_sandbox_bad_fault_options(args, message, capsys):
    code = main(["sandbox", "--port", "0", *args])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith(f"openai-ft: error: Invalid sandbox faults: {message}")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"SOURCES__OPENAI_FINE_TUNING__MAX_ATTEMPTS": "0"},
            "max_attempts must be at least 1, got 0",
        ),
        (
            {"SOURCES__OPENAI_FINE_TUNING__REQUEST_TIMEOUT": "0"},
            "request_timeout must be positive, got 0.0",
        ),
        (
            {"SOURCES__OPENAI_FINE_TUNING__MAX_REQUESTS_PER_SECOND": "-1"},
            "max_requests_per_second must be positive, got -1.0",
        ),
        (
            {"SOURCES__OPENAI_FINE_TUNING__BACKOFF_BASE": "9"},
            "backoff_base and backoff_max must satisfy 0 <= backoff_base <= backoff_max,"
            " got 9.0 and 8.0",
        ),
        (
            {"SOURCES__OPENAI_FINE_TUNING__JOB_IDS": '["ftjob-a", ""]'},
            "job_ids must be a list of job id strings, got ['ftjob-a', '']",
        ),
    ],
)
def test_numeric_and_list_options_out_of_range(cli, sandbox, env, message):
    code, _, err = cli(env=env)
    assert code == 2
    assert err == f"openai-ft: error: {message}"
    assert sandbox.stats.total == 0


def test_option_of_the_wrong_type_is_a_config_error(cli):
    code, _, err = cli(env={"SOURCES__OPENAI_FINE_TUNING__PAGE_SIZE": "lots"})
    assert code == 2
    assert err.startswith("openai-ft: error: Configuration error: ") and "page_size" in err
