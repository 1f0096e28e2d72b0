"""Reruns request and load only what is new, per job, and never lose or duplicate a row."""

from __future__ import annotations

import math
import time

import duckdb
import pytest

from sources.openai_fine_tuning.rows import is_final
from tests.helpers import (
    DATASET,
    TERMINAL,
    assert_history_equal_truth,
    expected_rerun_requests,
    no_change_rows,
    referenced_file_ids,
    training_truth,
)

CHECKPOINTS_ROUTE = "GET /v1/fine_tuning/jobs/{id}/checkpoints"
JOBS_ROUTE = "GET /v1/fine_tuning/jobs"


def _terminal_ids(world):
    return {j["id"] for j in world.truth_jobs() if j["status"] in TERMINAL}


@pytest.mark.parametrize("page_size", [100, 3])
def test_no_change_rerun_loads_nothing_within_request_budget(loader, world, page_size):
    loader.run(page_size=page_size)
    settled = _terminal_ids(world)
    loader.sandbox.stats.reset()

    summary = loader.run(page_size=page_size)

    assert summary.rows == no_change_rows(world)
    # nothing for files and results already read
    assert loader.sandbox.stats.by_route == expected_rerun_requests(world, page_size, settled)
    assert_history_equal_truth(loader, world)


def test_new_checkpoints_new_job_and_late_checkpoint_are_loaded_once(loader, world):
    loader.run()
    before_jobs = {j["id"]: j for j in world.truth_jobs()}
    before_checkpoints = {c["id"] for c in world.truth_checkpoints()}
    before_events = {e["id"] for evs in world.truth_events().values() for e in evs}
    newest_overall = max(c["created_at"] for c in world.truth_checkpoints())

    # a running job writes a checkpoint older than the newest loaded from any job, but newer
    # than its own newest: a cursor shared by all jobs would skip it
    running = [j for j in world.truth_jobs() if j["status"] == "running"]
    late_job = min(running, key=lambda j: j["created_at"])
    own_newest = max(
        (
            c["created_at"]
            for c in world.truth_checkpoints()
            if c["fine_tuning_job_id"] == late_job["id"]
        ),
        default=late_job["created_at"],
    )
    assert own_newest + 1 < newest_overall
    late = world.add_checkpoint(late_job["id"], created_at=own_newest + 1)
    world.advance(seconds=3600, new_checkpoints=2)  # running jobs write 2 more each
    new_job = world.add_job(status="running", checkpoints=3)

    summary = loader.run()

    new_ids = {c["id"] for c in world.truth_checkpoints()} - before_checkpoints
    changed_jobs = [j for j in world.truth_jobs() if before_jobs.get(j["id"]) != j]
    new_events = [e for evs in world.truth_events().values() for e in evs]
    new_events = [e for e in new_events if e["id"] not in before_events]
    assert late["id"] in new_ids and len(new_ids) == 1 + 2 * len(running) + 3
    assert summary.rows["jobs"] == len(changed_jobs)
    assert summary.rows["checkpoints"] == len(new_ids)
    assert summary.rows["events"] == len(new_events) > len(new_ids)
    assert summary.rows["step_metrics"] == sum(e["type"] == "metrics" for e in new_events)
    assert new_job["id"] in {j["id"] for j in changed_jobs}
    assert_history_equal_truth(loader, world)


def test_settled_jobs_are_never_requested_again(loader, world):
    loader.run()
    settled = _terminal_ids(world)
    finishing = world.finish_running_jobs()  # terminal now: read once more, then settled
    loader.sandbox.stats.reset()

    second = loader.run()
    paths = loader.sandbox.stats.by_path
    for kind in ("checkpoints", "events"):
        assert not [j for j in settled if f"/v1/fine_tuning/jobs/{j}/{kind}" in paths]
    assert all(paths[f"/v1/fine_tuning/jobs/{j}/checkpoints"] == 1 for j in finishing)
    # a finishing job writes its last steps: one page or more of new events
    assert all(paths[f"/v1/fine_tuning/jobs/{j}/events"] >= 1 for j in finishing)
    assert second.rows["jobs"] == len(finishing)
    new_results = [f for j in world.truth_jobs() if j["id"] in finishing for f in j["result_files"]]
    assert new_results and second.rows["files"] == len(new_results)
    # each new results file: its metadata and its content, once
    assert {p: n for p, n in paths.items() if p.startswith("/v1/files/")} == {
        **{f"/v1/files/{f}": 1 for f in new_results},
        **{f"/v1/files/{f}/content": 1 for f in new_results},
    }
    assert_history_equal_truth(loader, world)

    loader.sandbox.stats.reset()
    third = loader.run()
    assert third.rows == no_change_rows(world)
    # every job settled for every resource: one job-list page, the models list, nothing else
    assert loader.sandbox.stats.by_route == {JOBS_ROUTE: 1, "GET /v1/models": 1}
    assert_history_equal_truth(loader, world)


def test_unknown_status_counts_as_unsettled(loader, world):
    job_id = next(j["id"] for j in world.truth_jobs() if j["status"] == "running")
    world.set_status(job_id, "paused")  # not in the spec's enum: the API may add statuses
    loader.run()
    loader.sandbox.stats.reset()

    loader.run()
    for kind in ("checkpoints", "events"):
        assert loader.sandbox.stats.by_path[f"/v1/fine_tuning/jobs/{job_id}/{kind}"] == 1

    world.set_status(job_id, "succeeded")
    loader.run()
    loader.sandbox.stats.reset()
    loader.run()
    assert not [p for p in loader.sandbox.stats.by_path if job_id in p]
    assert_history_equal_truth(loader, world)


def test_full_refresh_reloads_everything_without_duplicates(loader, world):
    first = loader.run()
    loader.sandbox.stats.reset()

    again = loader.run(full_refresh=True)

    assert again.rows == first.rows
    assert loader.sandbox.stats.total == first.requests
    assert loader.count("checkpoints") == len(world.truth_checkpoints())
    assert_history_equal_truth(loader, world)


def test_an_item_a_page_repeats_from_the_page_before_loads_once(loader, world):
    """A server whose cursor is inclusive starts each page with the last item of the page
    before; the tables are declared deduplicated per run, so the reader skips the repeat."""
    world.pages_repeat_cursor_item = True

    summary = loader.run(page_size=3)

    assert summary.rows["checkpoints"] == len(world.truth_checkpoints())
    assert summary.rows["events"] == sum(map(len, world.truth_events().values()))
    assert_history_equal_truth(loader, world)


def test_job_ids_reads_only_those_jobs(loader, world):
    finished = [j for j in world.truth_jobs() if j["status"] == "succeeded"][0]["id"]
    running = [j for j in world.truth_jobs() if j["status"] == "running"][0]["id"]

    summary = loader.run(job_ids=[finished, running, finished])

    both = {finished, running}
    files = referenced_file_ids(world, both)
    results = world.get_job(finished)["result_files"]
    assert len(results) == 1
    assert loader.sandbox.stats.by_route == {
        "GET /v1/fine_tuning/jobs/{id}": 2,
        CHECKPOINTS_ROUTE: 2,
        "GET /v1/fine_tuning/jobs/{id}/events": sum(
            max(1, math.ceil(len(world.truth_events()[job_id]) / 100)) for job_id in both
        ),
        "GET /v1/files/{id}": len(files),
        # the results file and each training file, once
        "GET /v1/files/{id}/content": len(results) + len(training_truth(world, both)),
        "GET /v1/models": 1,
    }
    # exactly the rows of these two jobs, in every table
    assert_history_equal_truth(loader, world, only=both)
    assert loader.count("checkpoints") > 0 and loader.count("results") > 0
    assert summary.jobs_seen == 2

    loader.sandbox.stats.reset()
    loader.run(job_ids=[finished, running])
    # the succeeded job is settled: not even fetched by id
    assert loader.sandbox.stats.by_path == {
        f"/v1/fine_tuning/jobs/{running}": 1,
        f"/v1/fine_tuning/jobs/{running}/checkpoints": 1,
        f"/v1/fine_tuning/jobs/{running}/events": 1,
        "/v1/models": 1,
    }


def test_new_metric_appears_as_double_column(loader, world):
    loader.run()
    running = sum(1 for j in world.truth_jobs() if j["status"] == "running")
    world.extra_metrics = {"reward_mean": 1}  # an integer value still lands as DOUBLE
    world.advance(seconds=60, new_checkpoints=1)  # one checkpoint per running job

    loader.run()

    with duckdb.connect(str(loader.duckdb_path), read_only=True) as con:
        kind = con.execute(
            "SELECT data_type FROM information_schema.columns WHERE table_schema = ?"
            " AND table_name = 'checkpoints' AND column_name = 'metrics__reward_mean'",
            [DATASET],
        ).fetchall()
        values = con.execute(
            f"SELECT count(*) FROM {DATASET}.checkpoints WHERE metrics__reward_mean = 1.0"
        ).fetchone()[0]
    assert kind == [("DOUBLE",)]
    assert values == running


def test_results_attached_after_the_job_ended_are_loaded(loader, world):
    """A job read as succeeded while its `result_files` were still empty stays open for
    `jobs`, `files` and `results` until it lists them (or a day after it ended)."""
    job = next(j for j in world.truth_jobs() if j["status"] == "succeeded" and j["result_files"])
    results = job["result_files"]
    world.patch_job(job["id"], result_files=[], finished_at=int(time.time()))
    loader.run()
    assert loader.query(
        "SELECT count(*) AS n FROM {dataset}.results WHERE fine_tuning_job_id = '" + job["id"] + "'"
    ) == [{"n": 0}]
    world.patch_job(job["id"], result_files=results, finished_at=job["finished_at"])
    loader.sandbox.stats.reset()
    second = loader.run()
    paths = loader.sandbox.stats.by_path
    assert {p: n for p, n in paths.items() if p.startswith("/v1/files/")} == {
        **{f"/v1/files/{f}": 1 for f in results},
        **{f"/v1/files/{f}/content": 1 for f in results},
    }
    assert second.rows["jobs"] == 1 and second.rows["files"] == len(results)
    assert_history_equal_truth(loader, world)
    loader.sandbox.stats.reset()
    loader.run()  # now it is settled for every resource
    assert not [p for p in loader.sandbox.stats.by_path if job["id"] in p]


@pytest.mark.parametrize(
    ("job", "now", "final"),
    [
        ({"status": "succeeded", "result_files": ["file-r"], "finished_at": 100}, 100, True),
        ({"status": "succeeded", "result_files": [], "finished_at": 100}, 100 + 86_399, False),
        ({"status": "succeeded", "result_files": [], "finished_at": 100}, 100 + 86_400, True),
        ({"status": "failed", "result_files": [], "finished_at": 100}, 200, False),
        ({"status": "cancelled", "result_files": None, "finished_at": None}, 200, True),
        ({"status": "running", "result_files": ["file-r"], "finished_at": None}, 200, False),
        ({"status": "paused", "result_files": [], "finished_at": 100}, 10**9, False),
    ],
)
def test_a_job_is_final_once_it_lists_results_or_a_day_after_it_ended(job, now, final):
    assert is_final(job, now=now) is final
