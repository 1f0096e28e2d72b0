"""The job list read ahead: the run's listing yields the same jobs and makes the same requests
as reading the list itself when the state did not change, reads on by itself when it needs more
pages than the thread's rule did, never loses a failure, and nothing starts on a first run, for
another target's state, or once a stop was asked. (That a rerun through `load()` makes exactly
the requests of a listing without it is kept by the request counts of test_incremental.)"""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional, Sequence

import pytest

from sources.openai_fine_tuning.errors import AuthenticationError
from sources.openai_fine_tuning.http.client import FineTuningApi
from sources.openai_fine_tuning.http.stopping import clear_stop, request_stop
from sources.openai_fine_tuning.ledger import LEDGER_KEY, JobLedger, StateOwner
from sources.openai_fine_tuning.listing import ListingAhead, iter_listed_jobs
from sources.openai_fine_tuning.options import ApiOptions
from sources.openai_fine_tuning.settings import PER_JOB_RESOURCES
from sources.openai_fine_tuning.source import build
from tests.helpers.loading import API_KEY

JOBS_ROUTE = "GET /v1/fine_tuning/jobs"
PAGE_SIZE = 3  # the default world's 12 jobs are 4 pages
SELECTED = list(PER_JOB_RESOURCES)
WAIT_S = 10.0  # a bound on waiting for the thread, not a timing assertion


def _api(sandbox: Any, key: str = API_KEY) -> FineTuningApi:
    return FineTuningApi(ApiOptions(api_key=key, base_url=sandbox.base_url, page_size=PAGE_SIZE))


def _newest_first(world: Any) -> List[str]:
    jobs = sorted(world.truth_jobs(), key=lambda j: (j["created_at"], j["id"]), reverse=True)
    return [j["id"] for j in jobs]


def _state(sandbox: Any, world: Any, open_ids: Sequence[str]) -> Dict[str, Any]:
    """A ledger after a full listing, with every job but `open_ids` settled for every
    resource."""
    state: Dict[str, Any] = {}
    ledger = JobLedger(state, PER_JOB_RESOURCES)
    list(iter_listed_jobs(_api(sandbox), ledger, SELECTED))
    for job_id in _newest_first(world):
        if job_id not in open_ids:
            for resource in PER_JOB_RESOURCES:
                ledger.settle(job_id, resource)
    sandbox.stats.reset()
    return state


def _listing(
    sandbox: Any, state: Dict[str, Any], ahead: Optional[ListingAhead] = None
) -> List[str]:
    ledger = JobLedger(copy.deepcopy(state), PER_JOB_RESOURCES)
    return [job["id"] for job in iter_listed_jobs(_api(sandbox), ledger, SELECTED, ahead)]


def _ahead(sandbox: Any, snapshot: Dict[str, Any]) -> ListingAhead:
    ahead = ListingAhead(_api(sandbox))
    assert ahead.start({LEDGER_KEY: copy.deepcopy(snapshot)}, SELECTED, StateOwner())
    return ahead


def test_same_state_same_jobs_and_requests_as_without_reading_ahead(sandbox, world):
    order = _newest_first(world)
    state = _state(sandbox, world, open_ids=[order[7]])  # on page 3

    assert _listing(sandbox, state) == [order[7]]
    assert sandbox.stats.by_route == {JOBS_ROUTE: 3}
    sandbox.stats.reset()

    ahead = _ahead(sandbox, state)
    assert _listing(sandbox, state, ahead) == [order[7]]
    assert ahead.join(WAIT_S)
    assert sandbox.stats.by_route == {JOBS_ROUTE: 3}


def test_a_listing_that_needs_more_pages_than_the_thread_read_reads_on_itself(sandbox, world):
    order = _newest_first(world)
    snapshot = _state(sandbox, world, open_ids=[])  # the thread stops after page 1
    state = _state(sandbox, world, open_ids=[order[10]])  # on page 4

    ahead = _ahead(sandbox, snapshot)
    assert ahead.join(WAIT_S)
    assert sandbox.stats.by_route == {JOBS_ROUTE: 1}

    assert _listing(sandbox, state, ahead) == [order[10]]
    assert sandbox.stats.by_route == {JOBS_ROUTE: 4}


def test_a_listing_that_needs_fewer_pages_takes_what_it_needs(sandbox, world):
    order = _newest_first(world)
    snapshot = _state(sandbox, world, open_ids=[order[10]])  # the thread reads 4 pages
    state = _state(sandbox, world, open_ids=[])  # page 1 is enough

    ahead = _ahead(sandbox, snapshot)
    assert ahead.join(WAIT_S)
    assert _listing(sandbox, state, ahead) == []
    # only the thread's pages: the listing made no request of its own
    assert sandbox.stats.by_route == {JOBS_ROUTE: 4}


def test_a_failure_of_the_thread_reaches_the_listing_as_it_is(sandbox, world):
    state = _state(sandbox, world, open_ids=[])
    ahead = ListingAhead(_api(sandbox, key="sk-wrong"))
    assert ahead.start({LEDGER_KEY: state}, SELECTED, StateOwner())

    ledger = JobLedger(copy.deepcopy(state), PER_JOB_RESOURCES)
    with pytest.raises(AuthenticationError) as raised:
        list(iter_listed_jobs(_api(sandbox, key="sk-wrong"), ledger, SELECTED, ahead))
    assert str(raised.value) == (
        "The API rejected the key (401 Unauthorized) at GET /v1/fine_tuning/jobs: check"
        " sources.openai_fine_tuning.api_key or OPENAI_API_KEY"
    )
    assert sandbox.stats.by_route == {JOBS_ROUTE: 1}


def test_nothing_is_read_ahead_without_a_listing_or_for_another_target(sandbox, world):
    state = _state(sandbox, world, open_ids=[])
    first_run = {LEDGER_KEY: {}}
    assert not ListingAhead(_api(sandbox)).start(first_run, SELECTED, StateOwner())
    assert not ListingAhead(_api(sandbox)).start({}, SELECTED, StateOwner())

    StateOwner("digest-a", "target A").claim(state)
    theirs = {LEDGER_KEY: state}
    assert not ListingAhead(_api(sandbox)).start(theirs, SELECTED, StateOwner("digest-b", "B"))
    ahead = ListingAhead(_api(sandbox))
    assert ahead.start(theirs, SELECTED, StateOwner("digest-a", "target A"))
    assert ahead.join(WAIT_S)
    assert sandbox.stats.by_route == {JOBS_ROUTE: 1}


def test_no_page_is_read_ahead_once_a_stop_was_asked(sandbox, world):
    state = _state(sandbox, world, open_ids=[])
    request_stop()
    try:
        ahead = _ahead(sandbox, state)
        assert ahead.join(WAIT_S)
    finally:
        clear_stop()
    assert sandbox.stats.by_route == {}
    ahead.close()


def test_nothing_is_read_ahead_when_no_job_list_is_read(sandbox, world):
    state = _state(sandbox, world, open_ids=[])
    # only the organization's lists selected: the run lists no job
    assert not ListingAhead(_api(sandbox)).start({LEDGER_KEY: state}, ["models"], StateOwner())
    # configured job ids are fetched by id: the source has no reader ahead
    _, by_id = build(api_key=API_KEY, base_url=sandbox.base_url, job_ids=["ftjob-a"])
    _, listed = build(api_key=API_KEY, base_url=sandbox.base_url)
    assert by_id.listing_ahead is None
    assert isinstance(listed.listing_ahead, ListingAhead)
    assert sandbox.stats.by_route == {}
