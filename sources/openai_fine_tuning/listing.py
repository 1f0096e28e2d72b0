"""Which jobs a run reads: the job list (or the configured ids), minus what is settled."""

from __future__ import annotations

from typing import Any, Dict, Iterator, Optional, Sequence

from .http.client import FineTuningApi
from .ledger import JobLedger
from .rows import require_item
from .settings import JOBS_PATH


def iter_listed_jobs(
    api: FineTuningApi, ledger: JobLedger, selected: Sequence[str]
) -> Iterator[Dict[str, Any]]:
    """Jobs some selected resource still needs, from the job list, newest first.

    Paging stops once the listing has passed the newest job seen by the previous listing
    (everything above it is new) and has seen every known job a selected resource still
    needs; on the first run it reads all. Every listed job becomes known to the ledger, for
    every resource, so a resource selected later still finds it.
    """
    endpoint = api.endpoint(JOBS_PATH)
    listed_through = ledger.listed_through
    unseen_open = ledger.open_ids(selected)
    newest: Optional[int] = None
    passed_known = False
    pages = api.iter_pages(JOBS_PATH)
    try:
        for page in pages:
            jobs = [require_item(item, endpoint, "job") for item in page]
            for job in jobs:
                job_id, created_at = job["id"], job["created_at"]
                newest = created_at if newest is None else max(newest, created_at)
                unseen_open.discard(job_id)
                if listed_through is not None and created_at < listed_through:
                    passed_known = True
            done = passed_known and not unseen_open
            if not done:
                pages.fetch_next()  # while this page's jobs are read
            for job in jobs:
                if ledger.needs(job["id"], selected):
                    ledger.register(job["id"])
                    yield job
            if done:
                ledger.finish_listing(newest, vanished=())
                return
    finally:
        pages.close()
    # read to the end: known jobs not listed any more are gone
    ledger.finish_listing(newest, vanished=unseen_open)


def iter_configured_jobs(
    api: FineTuningApi, ledger: JobLedger, job_ids: Sequence[str], selected: Sequence[str]
) -> Iterator[Dict[str, Any]]:
    """The configured jobs some selected resource still needs, each fetched by id."""
    for job_id in dict.fromkeys(job_ids):  # keeps order, drops repeats
        if ledger.needs(job_id, selected):
            job = require_item(api.get_job(job_id), api.endpoint(f"{JOBS_PATH}/{job_id}"), "job")
            ledger.register(job_id)
            yield job
