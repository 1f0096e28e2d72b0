"""Bad events, metrics, results files and timestamps: each ends with its message and exit code,
and what can still be loaded is loaded."""

from __future__ import annotations

import base64
import re

import pytest

from tests.helpers import (
    DATASET,
    Loader,
    assert_events_equal_truth,
    assert_history_equal_truth,
    assert_step_metrics_equal_truth,
)

MS = 1_750_000_000_000  # milliseconds where seconds belong


def _only_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def _running(world) -> str:
    return next(j["id"] for j in world.truth_jobs() if j["status"] == "running")


def _succeeded(world) -> dict:
    # the newest succeeded job: its results file is base64 (the oldest one's is plain CSV)
    return next(j for j in world.truth_jobs() if j["status"] == "succeeded")


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("item_without_id", r"answered an event without an 'id': \{.*"),
        (
            "item_without_created_at",
            r"answered event 'ftevent-\w+' without an integer"
            r" 'created_at' \(got None\)",
        ),
    ],
)
def test_event_without_id_or_created_at(cli, sandbox, world, mode, expected):
    sandbox.misbehave = {"events": mode}
    code, out, err = cli()
    assert code == 4 and out == ""
    line = _only_line(err)
    match = re.fullmatch(
        r"openai-ft: error: GET /v1/fine_tuning/jobs/(ftjob-\w+)/events (.*)", line
    )
    assert match and match.group(1) in world.job_ids(), line
    assert re.fullmatch(expected, match.group(2)), line


def test_metrics_event_whose_data_is_not_an_object(cli, world, tmp_path, sandbox):
    job_id = _running(world)
    odd = world.add_event(job_id, "Step ?: metrics", type="metrics", data=[0.5, 0.4])
    no_step = world.add_event(job_id, "Step x", type="metrics", data={"step": "x", "loss": 1})

    code, out, err = cli()

    assert code == 0 and err == ""
    assert (
        "  metrics events whose data is not a step's metrics (kept in events, not in"
        " step_metrics): 2"
    ) in out.splitlines()
    loader = Loader(sandbox, tmp_path)
    assert_events_equal_truth(loader, world)  # both kept, `data` as sent
    metric_ids = {r["id"] for r in loader.rows("step_metrics")}
    assert odd["id"] not in metric_ids and no_step["id"] not in metric_ids
    # every other metrics event made its row
    world_metrics = {
        e["id"]
        for evs in world.truth_events().values()
        for e in evs
        if e["type"] == "metrics" and isinstance(e.get("data"), dict)
    }
    assert metric_ids == world_metrics - {no_step["id"]}


def _b64(text: str) -> bytes:
    return base64.b64encode(text.encode())


BROKEN_RESULTS = [
    (b"c3RlcCx0cmFpbl9sb3Nz" + b"QUJDR", "not valid base64 ("),
    (base64.b64encode(b"step,\xff\xfe\n1,2\n"), "not UTF-8 text"),
    (_b64("hello,world\n1,2\n"), "not a results CSV: no 'step' column (header: hello, world)"),
    (b"", "not a results CSV: no 'step' column (header: empty)"),
    (_b64("step,train_loss\n1,0.5,9\n"), "not a results CSV: line 2 has 3 fields, the header 2"),
    (
        _b64("step,train_loss\n1,0.5\n2,abc\n"),
        "not a results CSV: line 3, column 'train_loss' is not a number ('abc')",
    ),
    (b"step,train_loss\n1.5,0.5\n", "not a results CSV: line 2 has no whole 'step' ('1.5')"),
]


def test_unreadable_results_files_are_named_and_tried_again(cli, sandbox, world, tmp_path):
    """Each way a results file can be unreadable, one per job, in one run."""
    while sum(j["status"] == "succeeded" for j in world.truth_jobs()) < len(BROKEN_RESULTS):
        world.add_job(status="succeeded", checkpoints=2)
    jobs = [j for j in world.truth_jobs() if j["status"] == "succeeded"][: len(BROKEN_RESULTS)]
    reasons, good = {}, {}
    for job, (content, reason) in zip(jobs, BROKEN_RESULTS, strict=True):
        (file_id,) = job["result_files"]
        good[file_id] = world.file_content(file_id)
        world.set_file_content(file_id, content)
        reasons[file_id] = (job["id"], reason)

    code, out, err = cli()

    assert code == 0  # the rest of the run loaded
    lines = err.splitlines()
    assert len(lines) == len(reasons), err
    for file_id, (job_id, reason) in reasons.items():
        prefix = f"openai-ft: warning: results file {file_id!r} of job {job_id!r} not loaded: "
        (line,) = [line for line in lines if line.startswith(prefix)]
        assert line.startswith(prefix + reason), line
        assert line.endswith("; it is tried again next run")
        assert f"  {line.removeprefix('openai-ft: warning: ')}" in out.splitlines()
    loader = Loader(sandbox, tmp_path)
    loaded = {r["file_id"] for r in loader.rows("results", order="file_id, step")}
    assert loaded == {r["file_id"] for r in world.truth_results()} - set(reasons)
    assert_history_equal_truth(loader, world, resources=("jobs", "checkpoints", "events", "files"))

    # the next run asks for those files again (and only those), and loads them once good
    sandbox.stats.reset()
    code, _, err = cli()
    assert code == 0 and len(err.splitlines()) == len(reasons)
    contents = {p: n for p, n in sandbox.stats.by_path.items() if p.endswith("/content")}
    assert contents == {f"/v1/files/{file_id}/content": 1 for file_id in reasons}
    for file_id, content in good.items():
        world.set_file_content(file_id, content)
    code, _, err = cli()
    assert code == 0 and err == ""
    # (their metadata was read once, ever: `bytes` still tells the broken size)
    assert_history_equal_truth(loader, world, resources=("jobs", "checkpoints", "results"))
    sandbox.stats.reset()
    cli()
    assert not [p for p in sandbox.stats.by_path if p.endswith("/content")]  # settled now


def test_plain_csv_results_of_older_jobs_load(loader, world):
    oldest = [j for j in world.truth_jobs() if j["status"] == "succeeded"][-1]
    (file_id,) = oldest["result_files"]
    assert world.file_content(file_id).startswith(b"step,")  # served as plain CSV
    loader.run()
    assert_history_equal_truth(loader, world, resources=("results",))
    assert {r["file_id"] for r in loader.rows("results", order="file_id")} >= {file_id}


def test_deleted_file_is_counted_and_never_requested_again(cli, sandbox, world):
    (gone,) = world.deleted_file_ids()
    code, out, _ = cli()
    assert code == 0
    assert "  files deleted or expired (404, not requested again): 1" in out.splitlines()
    assert sandbox.stats.by_path[f"/v1/files/{gone}"] == 1
    world.advance(seconds=60, new_checkpoints=1, finish=True)
    sandbox.stats.reset()
    code, out, _ = cli()
    assert code == 0 and f"/v1/files/{gone}" not in sandbox.stats.by_path
    assert "deleted or expired" not in out


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (
            "job finished_at",
            "GET /v1/fine_tuning/jobs answered job '{job}' with finished_at {ms},"
            " outside Unix seconds of 1970..2100 (milliseconds?)",
        ),
        (
            "job created_at",
            "GET /v1/fine_tuning/jobs answered job '{job}' with created_at {ms},"
            " outside Unix seconds of 1970..2100 (milliseconds?)",
        ),
        (
            "event created_at",
            "GET /v1/fine_tuning/jobs/{job}/events answered event '{item}' with created_at"
            " {ms}, outside Unix seconds of 1970..2100 (milliseconds?)",
        ),
        (
            "file expires_at",
            "GET /v1/files/{item} answered file '{item}' with expires_at {ms},"
            " outside Unix seconds of 1970..2100 (milliseconds?)",
        ),
        (
            "job estimated_finish text",
            "GET /v1/fine_tuning/jobs answered job '{job}' with estimated_finish"
            " '2026-01-01T00:00:00Z', not whole Unix seconds",
        ),
        (
            "job finished_at negative",
            "GET /v1/fine_tuning/jobs answered job '{job}' with finished_at -5,"
            " outside Unix seconds of 1970..2100",
        ),
    ],
)
def test_unix_time_out_of_range_names_item_and_field(
    cli, sandbox, world, tmp_path, where, expected
):
    job = _running(world)
    item = ""
    if where == "job finished_at":
        world.patch_job(job, finished_at=MS)
    elif where == "job created_at":
        world.patch_job(job, created_at=MS)
    elif where == "event created_at":
        item = world.add_event(job, "Clock skew", created_at=MS)["id"]
    elif where == "file expires_at":
        item = world.get_job(job)["training_file"]
        world.patch_file(item, expires_at=MS)
    elif where == "job estimated_finish text":
        world.patch_job(job, estimated_finish="2026-01-01T00:00:00Z")
    else:
        world.patch_job(job, finished_at=-5)

    code, out, err = cli()

    assert code == 4 and out == ""
    assert _only_line(err) == "openai-ft: error: " + expected.format(job=job, item=item, ms=MS)
    # nothing was loaded: the run failed before its load
    loader = Loader(sandbox, tmp_path)
    import duckdb

    with duckdb.connect(str(loader.duckdb_path), read_only=True) as con:
        tables = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ?", [DATASET]
        ).fetchone()[0]
    assert tables == 0


def test_step_metrics_of_every_method(loader, world):
    for method in ("supervised", "dpo", "reinforcement"):
        world.add_job(status="succeeded", checkpoints=2, method=method)
    loader.run()
    assert_step_metrics_equal_truth(loader, world)
    methods = {j["id"]: j["method"]["type"] for j in world.truth_jobs()}
    loaded = {methods[r["fine_tuning_job_id"]] for r in loader.rows("step_metrics")}
    assert loaded == {"supervised", "dpo", "reinforcement"}
