"""What to request on a run, given the ledger: the jobs to read, and each job's new checkpoints."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Dict, Iterator, List, Optional, Sequence

from .client import FineTuningApi
from .errors import UpstreamError
from .ledger import JobLedger
from .settings import JOB_TIMESTAMP_FIELDS, JOBS_PATH, TERMINAL_STATUSES


def _require(item: Any, endpoint: str, kind: str) -> Dict[str, Any]:
    """The item if it has a string `id` and an integer `created_at`, else a clear error."""
    if not isinstance(item, dict):
        raise UpstreamError(f"{endpoint} answered a {kind} that is not an object: {item!r:.80}")
    if not isinstance(item.get("id"), str) or not item["id"]:
        raise UpstreamError(f"{endpoint} answered a {kind} without an 'id': {item!r:.120}")
    created_at = item.get("created_at")
    if not isinstance(created_at, int) or isinstance(created_at, bool):
        raise UpstreamError(
            f"{endpoint} answered {kind} {item['id']!r} without an integer 'created_at'"
            f" (got {created_at!r})"
        )
    return item


def _utc(seconds: Optional[int]) -> Optional[datetime]:
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=UTC)


def job_row(job: Dict[str, Any]) -> Dict[str, Any]:
    """The `jobs` table row: the API object with Unix-second fields as UTC timestamps."""
    row = dict(job)
    for name in JOB_TIMESTAMP_FIELDS:
        if isinstance(row.get(name), int):
            row[name] = _utc(row[name])
    return row


def checkpoint_row(checkpoint: Dict[str, Any]) -> Dict[str, Any]:
    """The `checkpoints` table row; every numeric metric a float, so new metrics land as DOUBLE."""
    row = dict(checkpoint)
    row["created_at"] = _utc(checkpoint["created_at"])
    metrics = checkpoint.get("metrics")
    if isinstance(metrics, dict):
        row["metrics"] = {
            name: float(value)
            if isinstance(value, (int, float)) and not isinstance(value, bool)
            else value
            for name, value in metrics.items()
        }
    return row


def iter_listed_jobs(api: FineTuningApi, ledger: JobLedger) -> Iterator[Dict[str, Any]]:
    """Jobs that are not settled, from the job list, newest first.

    Paging stops once the listing has passed the newest job seen by the previous listing
    (everything above it is new) and has seen every open job; on the first run it reads all.
    """
    endpoint = api.endpoint(JOBS_PATH)
    listed_through = ledger.listed_through
    unseen_open = ledger.open_ids()
    newest: Optional[int] = None
    passed_known = False
    pages = api.iter_job_pages()
    try:
        for page in pages:
            for item in page:
                job = _require(item, endpoint, "job")
                created_at = job["created_at"]
                newest = created_at if newest is None else max(newest, created_at)
                unseen_open.discard(job["id"])
                if listed_through is not None and created_at < listed_through:
                    passed_known = True
                if not ledger.is_settled(job["id"]):
                    yield job
            if passed_known and not unseen_open:
                ledger.finish_listing(newest, vanished=())
                return
    finally:
        pages.close()
    # read to the end: open jobs not listed any more are gone
    ledger.finish_listing(newest, vanished=unseen_open)


def iter_configured_jobs(
    api: FineTuningApi, ledger: JobLedger, job_ids: Sequence[str]
) -> Iterator[Dict[str, Any]]:
    """The configured jobs that are not settled, each fetched by id."""
    for job_id in dict.fromkeys(job_ids):  # keeps order, drops repeats
        if not ledger.is_settled(job_id):
            yield _require(api.get_job(job_id), api.endpoint(f"{JOBS_PATH}/{job_id}"), "job")


def iter_new_checkpoints(
    api: FineTuningApi, ledger: JobLedger, job: Dict[str, Any]
) -> Iterator[List[Dict[str, Any]]]:
    """Rows of the job's checkpoints not loaded yet, one list per page, newest first.

    Pages come newest first, so reading stops at the first page that reaches a checkpoint
    older than the job's cursor. Afterwards the cursor advances, and a job that was terminal
    when listed is settled.
    """
    job_id = job["id"]
    endpoint = api.endpoint(f"{JOBS_PATH}/{job_id}/checkpoints")
    cursor_at, known_ids = ledger.cursor(job_id)
    newest_at, newest_ids = cursor_at, set(known_ids)
    pages = api.iter_checkpoint_pages(job_id)
    try:
        for page in pages:
            rows = []
            reached_loaded = False
            for item in page:
                checkpoint = _require(item, endpoint, "checkpoint")
                at, checkpoint_id = checkpoint["created_at"], checkpoint["id"]
                if cursor_at is not None and at <= cursor_at:
                    reached_loaded = reached_loaded or at < cursor_at
                    if at < cursor_at or checkpoint_id in known_ids:
                        continue
                rows.append(checkpoint_row(checkpoint))
                if newest_at is None or at > newest_at:
                    newest_at, newest_ids = at, {checkpoint_id}
                elif at == newest_at:
                    newest_ids.add(checkpoint_id)
            if rows:
                yield rows
            if reached_loaded:
                break
    finally:
        pages.close()
    ledger.advance(job_id, newest_at, newest_ids)
    if job.get("status") in TERMINAL_STATUSES:
        ledger.settle(job_id)
