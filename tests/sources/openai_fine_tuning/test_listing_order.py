"""The order a listing hands jobs to their reads: the longest trained of those listed so far
first, ties as listed, every job once, with the requests of the listing as they were."""

from __future__ import annotations

import time
from typing import Any, Dict, List

from sources.openai_fine_tuning.http.client import FineTuningApi
from sources.openai_fine_tuning.ledger import JobLedger
from sources.openai_fine_tuning.listing import LongestFirst, iter_listed_jobs, training_seconds
from sources.openai_fine_tuning.options import ApiOptions
from sources.openai_fine_tuning.settings import PER_JOB_RESOURCES
from tests.helpers.loading import API_KEY

JOBS_ROUTE = "GET /v1/fine_tuning/jobs"
SELECTED = list(PER_JOB_RESOURCES)


def _api(sandbox: Any, page_size: int) -> FineTuningApi:
    return FineTuningApi(
        ApiOptions(api_key=API_KEY, base_url=sandbox.base_url, page_size=page_size)
    )


def _listed(sandbox: Any, page_size: int, **options: Any) -> List[Dict[str, Any]]:
    ledger = JobLedger({}, PER_JOB_RESOURCES)
    return list(iter_listed_jobs(_api(sandbox, page_size), ledger, SELECTED, **options))


def _as_listed(sandbox: Any) -> List[Dict[str, Any]]:
    """The job list as the API orders it."""
    jobs = [job for page in _api(sandbox, 100).iter_pages("fine_tuning/jobs") for job in page]
    sandbox.stats.reset()
    return jobs


def test_one_page_comes_longest_trained_first_ties_as_listed(sandbox):
    as_listed = _as_listed(sandbox)
    before = time.time()
    jobs = _listed(sandbox, page_size=100)  # the 12 jobs on one page
    after = time.time()

    # running jobs trained until the listing's clock, read between `before` and `after`
    for now in (before, after):
        expected = sorted(
            as_listed, key=lambda j: -training_seconds(j, now)
        )  # sorted() is stable: ties keep the listing's order
        if [j["id"] for j in jobs] == [j["id"] for j in expected]:
            break
    else:
        raise AssertionError([j["id"] for j in jobs])
    assert [j["id"] for j in jobs] != [j["id"] for j in as_listed]  # the order did change
    assert sandbox.stats.snapshot()["by_route"] == {JOBS_ROUTE: 1}


def test_several_pages_give_every_job_once_with_one_request_per_page(sandbox, world):
    jobs = _listed(sandbox, page_size=3)  # 4 pages, each taken in as it comes

    assert sorted(j["id"] for j in jobs) == sorted(j["id"] for j in world.truth_jobs())
    assert len(jobs) == 12
    assert sandbox.stats.snapshot()["by_route"] == {JOBS_ROUTE: 4}


def test_pages_wait_while_max_waiting_jobs_wait(sandbox):
    pages = [page for page in _api(sandbox, 3).iter_pages("fine_tuning/jobs")]
    sandbox.stats.reset()
    now = time.time()
    # one job may wait: a page comes in only once the last one's jobs are all out
    expected = [
        j["id"] for page in pages for j in sorted(page, key=lambda j: -training_seconds(j, now))
    ]

    ledger = JobLedger({}, PER_JOB_RESOURCES)
    jobs = []
    for job in iter_listed_jobs(_api(sandbox, 3), ledger, SELECTED, max_waiting=1):
        jobs.append(job["id"])
        time.sleep(0.02)  # a slow reader: the next page has come meanwhile, and waits

    assert jobs == expected
    assert sandbox.stats.snapshot()["by_route"] == {JOBS_ROUTE: 4}


def test_longest_first_orders_by_training_time_and_counts_unusable_times_as_zero():
    now = time.time()
    waiting = LongestFirst()
    jobs = [
        {"id": "short", "created_at": 100, "finished_at": 160},
        {"id": "no-times"},
        {"id": "long", "created_at": 100, "finished_at": 5100},
        {"id": "also-short", "created_at": 200, "finished_at": 260},
        {"id": "text-times", "created_at": "100", "finished_at": "9999"},
        {"id": "running", "status": "running", "created_at": int(now) - 1000},
        {"id": "queued", "status": "queued", "created_at": 0, "finished_at": None},
        {"id": "validating", "status": "validating_files", "created_at": 0},
        {"id": "ends-before-it-starts", "created_at": 500, "finished_at": 400},
    ]
    for job in jobs:
        waiting.add(job)

    order = [waiting.pop()["id"] for _ in range(len(jobs))]

    assert order == [
        "long",
        "running",
        "short",
        "also-short",
        "no-times",
        "text-times",
        "queued",
        "validating",
        "ends-before-it-starts",
    ]
    assert len(waiting) == 0
