"""Training and validation files archived line by line (`training_data`): every byte kept,
read once per file, a broken body loading nothing of its file and read again next run."""

from __future__ import annotations

import json
from datetime import date

import pytest

from fake_openai.faults import FaultPlan
from pipelines.analysis.report_data import LIFECYCLE_COLUMNS
from pipelines.run import load
from tests.helpers import (
    API_KEY,
    assert_history_equal_truth,
    assert_training_data_equal_truth,
    lifecycle_truth,
    training_truth,
)

CONTENT = "GET /v1/files/{id}/content"
METADATA = "GET /v1/files/{id}"


def _requests_for(sandbox, file_id: str) -> dict:
    paths = sandbox.stats.by_path
    return {
        METADATA: paths.get(f"/v1/files/{file_id}", 0),
        CONTENT: paths.get(f"/v1/files/{file_id}/content", 0),
    }


def test_every_training_file_is_archived_exactly_with_its_quirks(loader, world, sandbox):
    summary = loader.run()
    assert_history_equal_truth(loader, world)
    quirks = world.quirk_files()
    files = {r["id"]: r for r in loader.rows("files")}
    assert files[quirks["crlf"]]["line_ending"] == "crlf"
    assert files[quirks["no_final_newline"]]["final_newline"] is False
    assert files[quirks["bom"]]["bom"] is True
    assert files[quirks["bom"]]["final_newline"] is True
    u2028 = loader.query(
        "SELECT line, raw FROM {dataset}.training_examples WHERE file_id = '"
        + quirks["u2028_emoji"]
        + "' AND raw LIKE '%\u2028%'"
    )
    assert u2028 and all("\n" not in row["raw"] for row in u2028)  # U+2028 stayed inside
    invalid = loader.query(
        "SELECT line, raw FROM {dataset}.training_examples WHERE NOT valid_json ORDER BY file_id,"
        " line"
    )
    truth = training_truth(world)
    expected_invalid = [
        {"line": row["line"], "raw": row["raw"]}
        for file_id in sorted(truth)
        for row in truth[file_id][1]
        if not row["valid_json"]
    ]
    assert invalid == expected_invalid
    assert {r["raw"] for r in invalid} >= {""}  # a blank line is a row too
    assert summary.invalid_training_lines == len(expected_invalid) >= 2
    assert summary.training_files == len(truth)
    assert summary.rows["training_examples"] == sum(len(rows) for _, rows in truth.values())
    # each training file: its metadata and its content, once
    for file_id in truth:
        assert _requests_for(sandbox, file_id) == {METADATA: 1, CONTENT: 1}


def test_a_rerun_requests_no_training_file_again(loader, world, sandbox):
    loader.run()
    sandbox.stats.reset()
    summary = loader.run()
    assert summary.rows["training_examples"] == 0
    assert CONTENT not in sandbox.stats.by_route
    assert METADATA not in sandbox.stats.by_route


@pytest.mark.parametrize("world", [{"big_training_file_bytes": 6_000_000}], indirect=True)
def test_a_file_of_several_megabytes_is_archived_exactly(loader, world):
    truth = training_truth(world)
    biggest = max(len(content) for content in world.truth_training_files().values())
    assert biggest >= 5_000_000
    loader.run(resources=["jobs", "training_data"])
    with loader.reading():
        assert_training_data_equal_truth(loader, world)
    assert loader.count("training_examples") == sum(len(rows) for _, rows in truth.values())


def _a_training_file(world) -> tuple[str, str]:
    """(job id, training file id) of the newest job whose training file no other job uses."""
    jobs = world.truth_jobs()
    for job in jobs:
        users = [
            j for j in jobs if job["training_file"] in (j["training_file"], j["validation_file"])
        ]
        if len(users) == 1:
            return job["id"], job["training_file"]
    raise AssertionError("no training file used by one job only")


def test_a_body_of_the_wrong_length_loads_nothing_and_is_read_again(loader, world, sandbox):
    job_id, file_id = _a_training_file(world)
    content = world.truth_training_files()[file_id]
    world.patch_file(file_id, bytes=len(content) + 7)
    summary = loader.run()
    [problem] = summary.unreadable_files
    assert (problem.file_id, problem.job_id, problem.kind) == (file_id, job_id, "training")
    assert problem.reason == (
        f"the body has {len(content):,} bytes, its metadata says {len(content) + 7:,}"
    )
    assert summary.warnings() == [
        f"training file {file_id!r} of job {job_id!r} not loaded: {problem.reason}; it is tried"
        " again next run"
    ]
    assert loader.count("training_examples") == sum(
        len(rows) for f, (_, rows) in training_truth(world).items() if f != file_id
    )
    [row] = loader.query(
        "SELECT sha256, lines, bytes FROM {dataset}.files WHERE id = '" + file_id + "'"
    )
    assert row == {"sha256": None, "lines": None, "bytes": len(content) + 7}  # metadata only
    [status] = loader.query(
        "SELECT complete FROM {dataset}.training_files WHERE file_id = '" + file_id + "'"
    )
    assert status == {"complete": False}

    world.patch_file(file_id, bytes=len(content))
    sandbox.stats.reset()
    summary = loader.run()
    assert summary.unreadable_files == []
    assert _requests_for(sandbox, file_id) == {METADATA: 1, CONTENT: 1}
    assert_history_equal_truth(loader, world)


def test_a_connection_lost_mid_body_loads_nothing_and_is_read_again(loader, world, sandbox):
    truth = training_truth(world)
    sandbox.faults = FaultPlan(rate=1.0, kinds=["drop"], routes=["content"])
    summary = loader.run(resources=["jobs", "training_data"], max_attempts=2, backoff_base=0.01)
    assert sorted(p.file_id for p in summary.unreadable_files) == sorted(truth)
    assert {p.reason for p in summary.unreadable_files} == {
        f"GET /v1/files/{p.file_id}/content failed after 2 attempts: connection dropped"
        f" mid-response ({sandbox.root_url})"
        for p in summary.unreadable_files
    }
    assert loader.count("training_examples") == 0
    sandbox.faults = None
    summary = loader.run()
    assert summary.unreadable_files == []
    assert_history_equal_truth(loader, world)


def test_a_file_that_is_not_utf8_loads_with_its_bad_bytes_replaced_and_is_named(loader, world):
    _, file_id = _a_training_file(world)
    content = b'{"messages": [{"role": "user", "content": "caf\xe9"}]}\n{"messages": []}\n'
    world.set_file_content(file_id, content)
    summary = loader.run()
    assert summary.non_utf8_files == [file_id]
    assert (
        "  training files that are not UTF-8 (bad bytes replaced, files.utf8 false):"
        f" {file_id}" in summary.lines()
    )
    rows = loader.query(
        "SELECT line, raw, valid_json FROM {dataset}.training_examples WHERE file_id = '"
        + file_id
        + "' ORDER BY line"
    )
    assert rows == [
        {
            "line": 1,
            "raw": '{"messages": [{"role": "user", "content": "caf\ufffd"}]}',
            "valid_json": False,
        },
        {"line": 2, "raw": '{"messages": []}', "valid_json": True},
    ]
    [row] = loader.query("SELECT utf8, lines FROM {dataset}.files WHERE id = '" + file_id + "'")
    assert row == {"utf8": False, "lines": 2}
    assert_history_equal_truth(loader, world)


def messages_truth(world) -> list:
    """Rows of `training_messages`, restated from the training files' lines."""
    expected = []
    for file_id, (_, rows) in training_truth(world).items():
        for row in rows:
            if row["kind"] is None:
                continue
            example = json.loads(row["raw"])
            parts = (
                [
                    ("input", example["input"]["messages"]),
                    ("preferred_output", example["preferred_output"]),
                    ("non_preferred_output", example["non_preferred_output"]),
                ]
                if row["kind"] == "dpo"
                else [("messages", example["messages"])]
            )
            for part, messages in parts:
                for position, message in enumerate(messages, start=1):
                    content = message.get("content")
                    if not (isinstance(content, str) or content is None):
                        content = json.dumps(content, separators=(",", ":"), ensure_ascii=False)
                    weight = message.get("weight")
                    expected.append(
                        (
                            file_id,
                            row["line"],
                            part,
                            position,
                            message.get("role"),
                            content,
                            None if weight is None else float(weight),
                            isinstance(message.get("tool_calls"), list),
                        )
                    )
    return sorted(expected)


def loaded_messages(target) -> list:
    rows = target.query(
        "SELECT file_id, line, part, position, role, content, weight, has_tool_calls"
        " FROM {dataset}.training_messages"
    )
    return sorted(tuple(r.values()) for r in rows)


def test_new_tables_and_views_equal_the_truth_on_every_destination(target, sandbox, world):
    load(api_key=API_KEY, base_url=sandbox.base_url, **target.load_options())
    with target.reading():
        assert_history_equal_truth(target, world)
        got = loaded_messages(target)
        assert got == messages_truth(world)
        assert any(r[7] for r in got) and any(r[6] == 0.0 for r in got)  # tool calls, weights
        lifecycle = target.query(
            f"SELECT {', '.join(LIFECYCLE_COLUMNS)} FROM {{dataset}}.model_lifecycle ORDER BY model"
        )
        assert lifecycle == lifecycle_truth(world, date.today())
        files = target.query(
            "SELECT fine_tuning_job_id, file_id, role, examples, invalid_lines, bytes, complete"
            " FROM {dataset}.training_files ORDER BY fine_tuning_job_id, role"
        )
    truth = training_truth(world)
    contents = world.truth_training_files()
    expected = []
    for job in sorted(world.truth_jobs(), key=lambda j: j["id"]):
        for name, role in (("training_file", "training"), ("validation_file", "validation")):
            file_id = job[name]
            if not file_id:
                continue
            rows = truth.get(file_id, (None, []))[1]
            expected.append(
                {
                    "fine_tuning_job_id": job["id"],
                    "file_id": file_id,
                    "role": role,
                    "examples": sum(r["valid_json"] for r in rows),
                    "invalid_lines": sum(not r["valid_json"] for r in rows),
                    "bytes": len(contents[file_id]) if file_id in contents else None,
                    "complete": file_id in truth,
                }
            )
    assert files == expected
