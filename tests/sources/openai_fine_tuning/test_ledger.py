"""The per-job, per-resource ledger: what it records, how it compacts, how old state upgrades."""

from __future__ import annotations

import json

from sources.openai_fine_tuning.ledger import JobLedger
from sources.openai_fine_tuning.settings import RESOURCES


def test_a_job_is_skipped_only_by_the_resources_settled_for_it():
    ledger = JobLedger({}, RESOURCES)
    ledger.register("ftjob-a")
    ledger.settle("ftjob-a", "checkpoints")

    assert ledger.is_settled("ftjob-a", "checkpoints")
    assert not ledger.is_settled("ftjob-a", "jobs")
    assert ledger.needs("ftjob-a", ["jobs", "checkpoints"])
    assert not ledger.needs("ftjob-a", ["checkpoints"])
    assert ledger.open_ids(["checkpoints"]) == set()
    assert ledger.open_ids(["jobs"]) == {"ftjob-a"}
    assert ledger.needs("ftjob-new", ["checkpoints"])  # unknown jobs are needed by everyone


def test_a_job_settled_for_every_resource_keeps_only_its_id():
    state: dict = {}
    ledger = JobLedger(state, RESOURCES)
    ledger.advance("ftjob-a", "events", 100, ["ftevent-1"])
    for resource in RESOURCES:
        ledger.settle("ftjob-a", resource)

    assert state["open"] == {}
    assert state["settled"] == {",".join(sorted(RESOURCES)): ["ftjob-a"]}
    assert not ledger.needs("ftjob-a", RESOURCES)
    json.dumps(state)  # dlt stores it as JSON


def test_a_resource_added_later_still_reads_settled_jobs():
    state: dict = {}
    old = JobLedger(state, ["jobs", "checkpoints"])
    old.settle("ftjob-a", "jobs")
    old.settle("ftjob-a", "checkpoints")

    new = JobLedger(state, [*RESOURCES])
    assert new.open_ids(["events"]) == {"ftjob-a"}
    assert not new.needs("ftjob-a", ["jobs", "checkpoints"])
    new.settle("ftjob-a", "events")  # re-opened with what it had, then settled once more
    assert new.is_settled("ftjob-a", "jobs") and new.is_settled("ftjob-a", "events")
    assert not new.is_settled("ftjob-a", "files")


def test_version_1_state_upgrades_in_place():
    state = {
        "settled": ["ftjob-done"],
        "open": {
            "ftjob-run": {
                "created_at": 1_750_000_000,
                "fingerprint": "abc",
                "cursor_at": 1_750_000_100,
                "cursor_ids": ["ftckpt_1"],
            }
        },
        "listed_through": 1_750_000_000,
    }
    ledger = JobLedger(state, RESOURCES)

    assert state["version"] == 2
    assert ledger.listed_through == 1_750_000_000
    assert ledger.cursor("ftjob-run", "checkpoints") == (1_750_000_100, {"ftckpt_1"})
    assert ledger.cursor("ftjob-run", "events") == (None, set())
    # version 1 settled a job when checkpoints read it, whatever else was selected: the
    # jobs table may lack it, so only checkpoints stays settled
    assert ledger.is_settled("ftjob-done", "checkpoints")
    assert not ledger.is_settled("ftjob-done", "jobs")
    assert ledger.open_ids(["jobs"]) == {"ftjob-done", "ftjob-run"}


def test_version_1_fingerprint_survives_the_upgrade():
    from sources.openai_fine_tuning.ledger import fingerprint

    job = {"id": "ftjob-run", "status": "running"}
    state = {"settled": [], "open": {"ftjob-run": {"fingerprint": fingerprint(job)}}}
    ledger = JobLedger(state, RESOURCES)
    assert ledger.job_changed(job) is False
    assert ledger.job_changed({**job, "status": "succeeded"}) is True


def test_a_file_is_claimed_once_ever():
    state: dict = {}
    ledger = JobLedger(state, RESOURCES)
    assert ledger.claim_file("file-a") is True
    assert ledger.claim_file("file-a") is False  # another job of the same run
    ledger.file_done("file-a")
    ledger.claim_file("file-gone")
    ledger.file_done("file-gone", missing=True)

    later = JobLedger(json.loads(json.dumps(state)), RESOURCES)  # the next run's state
    assert later.claim_file("file-a") is False
    assert later.claim_file("file-gone") is False
    assert later.missing_files == ["file-gone"]
    assert later.claim_file("file-b") is True


def test_a_training_file_content_is_claimed_once_ever():
    state: dict = {}
    ledger = JobLedger(state, RESOURCES)
    for file_id in ("file-archived", "file-gone", "file-no-content", "file-broken"):
        assert ledger.claim_content(file_id) is True
        assert ledger.claim_content(file_id) is False  # another job of the same run
    ledger.content_done("file-archived")
    ledger.content_done("file-gone", missing=True)  # its metadata answered 404
    ledger.file_done("file-no-content")  # metadata loaded, then the content answered 404
    ledger.content_done("file-no-content", missing=True)
    ledger.file_done("file-broken")  # metadata loaded, the body was wrong: read again

    later = JobLedger(json.loads(json.dumps(state)), RESOURCES)  # the next run's state
    assert [later.claim_content(f) for f in ("file-archived", "file-gone", "file-no-content")] == [
        False,
        False,
        False,
    ]
    assert later.claim_content("file-broken") is True
    # the metadata of every one of them is known: `files` requests none of them again
    assert [later.claim_file(f) for f in ("file-archived", "file-gone", "file-no-content")] == [
        False,
        False,
        False,
    ]
    assert later.claim_file("file-broken") is False
    assert later.missing_files == ["file-gone"]
    assert state["files"]["content_missing"] == ["file-no-content"]
