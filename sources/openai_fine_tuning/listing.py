"""Which jobs a run reads: the job list (or the configured ids), minus what is settled.

The job list is a chain: each page's `after` cursor is the last id of the page before, so a
rerun that must reach an old open job waits for every page in turn (ten of them for 1,000
jobs). `ListingAhead` starts that chain on a thread of its own as soon as the run may make
requests, with the stop rule applied to the state as the run found it, so the chain overlaps
the run's setup (recovery, dlt's state sync and extract setup) instead of following it.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import queue
import threading
import time
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Set

from .http.client import FineTuningApi
from .http.read_ahead import ReadAhead
from .http.stopping import stop_requested
from .ledger import LEDGER_KEY, JobLedger, StateOwner
from .rows import require_item
from .settings import JOBS_PATH, NOT_TRAINING_YET, PER_JOB_RESOURCES

Page = List[Dict[str, Any]]


class StopRule:
    """When a listing may stop paging: once it has passed the newest job seen by the previous
    listing (everything above it is new) and has seen every known job a selected resource
    still needs. On the first run (no previous listing) it reads all.

    Args:
        ledger: What was loaded.
        selected: The per-job resources this run reads.
    """

    def __init__(self, ledger: JobLedger, selected: Sequence[str]) -> None:
        self.listed_through = ledger.listed_through
        self.unseen_open: Set[str] = ledger.open_ids(selected)
        self.newest: Optional[int] = None
        self._passed_known = False

    def see(self, jobs: Sequence[Dict[str, Any]]) -> bool:
        """Takes in a page's jobs; True once no further page is needed."""
        for job in jobs:
            created_at = job["created_at"]
            self.newest = created_at if self.newest is None else max(self.newest, created_at)
            self.unseen_open.discard(job["id"])
            if self.listed_through is not None and created_at < self.listed_through:
                self._passed_known = True
        return self._passed_known and not self.unseen_open


_END = object()  # the list has no more pages
_PAUSED = object()  # the thread's rule says stop; the reader may still want more


class ListingAhead:
    """The job list's pages, read ahead on a thread of its own from `start()` on.

    The thread stops where the stop rule, applied to the state as it was at `start()`, says a
    listing may stop. The run's own listing (`iter_listed_jobs`, with the state after recovery
    and dlt's sync) takes those pages as they come: should it need more (its state knows more
    open jobs), it goes on from the last page itself; should it need fewer, it closes the rest
    (at most the request under way is made). Pages or failures are handed over as they are.

    Args:
        api: The API the pages come from.
    """

    def __init__(self, api: FineTuningApi) -> None:
        self._api = api
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pages: Optional[ReadAhead[Page]] = None
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self._closed = False  # no more pages wanted
        self._ended = False  # the thread has ended
        self._taken = False

    def start(
        self, source_state: Mapping[str, Any], selected: Sequence[str], owner: StateOwner
    ) -> bool:
        """Starts reading the job list ahead, unless there is nothing to stop it by (no
        listing in `source_state`: a first run, which reads all anyway), the state is another
        target's (the run refuses it) or no per-job resource is selected (the run lists no
        job). True when started.

        Args:
            source_state: The source's dlt state as the run found it (read, not kept).
            selected: The per-job resources this run reads.
            owner: The target the state must belong to.
        """
        recorded = source_state.get(LEDGER_KEY)
        per_job = [r for r in selected if r in PER_JOB_RESOURCES]
        if self._thread is not None or not isinstance(recorded, dict) or not per_job:
            return False  # started already, a first run, or no job is read (`models` only)
        if recorded.get("listed_through") is None or not owner.owns(recorded):
            return False
        ledger = JobLedger(copy.deepcopy(recorded), PER_JOB_RESOURCES)
        rule = StopRule(ledger, per_job)
        self._pages = self._api.iter_pages(JOBS_PATH)
        self._thread = threading.Thread(
            target=self._read, args=(rule,), name="openai-ft-job-list", daemon=True
        )
        self._thread.start()
        return True

    def _read(self, rule: StopRule) -> None:
        assert self._pages is not None
        try:
            while not (self._closed or stop_requested()):
                page = next(self._pages, _END)
                self._queue.put(page)
                if page is _END:
                    return
                try:
                    if rule.see(page):
                        break
                except (KeyError, TypeError):  # not a job: the reader says what is wrong
                    break
            self._queue.put(_PAUSED)
        except BaseException as error:  # noqa: BLE001 (handed to the reader as it is)
            self._queue.put(error)
        finally:
            with self._lock:
                self._ended = True
                closed = self._closed
            if closed:
                self._pages.close()

    def join(self, timeout: Optional[float] = None) -> bool:
        """Waits for the thread to end (True when it has, or never started)."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def take(self) -> Optional[Iterator[Page]]:
        """The pages read ahead, for the run's listing (once); None when not started."""
        if self._pages is None or self._taken:
            return None
        self._taken = True
        return _TakenPages(self)

    def close(self) -> None:
        """Stops reading ahead (the request under way, if any, is made)."""
        with self._lock:
            self._closed = True
            ended = self._ended or self._thread is None
        if ended and self._pages is not None:
            self._pages.close()


class _TakenPages:
    """The pages of a `ListingAhead`, then (should the reader want more) the rest of the list,
    read by the reader: an iterator with `fetch_next()` and `close()`, as `ReadAhead`."""

    def __init__(self, ahead: ListingAhead) -> None:
        self._ahead = ahead
        self._own = False  # the reader reads the pages itself now

    def __iter__(self) -> _TakenPages:
        return self

    def __next__(self) -> Page:
        pages = self._ahead._pages
        assert pages is not None
        if self._own:
            return next(pages)
        got = self._ahead._queue.get()
        if got is _END:
            raise StopIteration
        if got is _PAUSED:
            self._own = True  # the thread has ended: its pages are the reader's now
            return next(pages)
        if isinstance(got, BaseException):
            raise got
        return got  # type: ignore[no-any-return]

    def ready(self) -> bool:
        """True when the next page (or the end, or a failure) has come: `next()` won't wait."""
        if self._own:
            return self._ahead._pages is not None and self._ahead._pages.ready()
        return not self._ahead._queue.empty()

    def fetch_next(self) -> None:
        """Fetches the next page meanwhile, once the reader reads the pages itself."""
        if self._own and self._ahead._pages is not None:
            self._ahead._pages.fetch_next()

    def close(self) -> None:
        self._ahead.close()


def training_seconds(job: Mapping[str, Any], now: float) -> float:
    """How long a job has trained: from `created_at` to `finished_at`, or to `now` while it
    trains (0 s before it starts: validating its files, queued).

    A job's events (one per training step) and checkpoints grow with its training, and their
    pages come one after another: the longer a job trained, the longer its reads take, however
    many workers there are. Jobs without usable times count as 0 s.
    """
    created, finished = job.get("created_at"), job.get("finished_at")
    if not isinstance(created, (int, float)) or job.get("status") in NOT_TRAINING_YET:
        return 0.0
    end = finished if isinstance(finished, (int, float)) else now
    return max(0.0, float(end) - float(created))


# jobs a listing holds while they wait for their reads, at most (a page more may come in):
# their records stay in memory, ~10 KB each
MAX_JOBS_WAITING = 2000


class LongestFirst:
    """Listed jobs waiting for their reads, the longest trained first (ties: as listed).

    Reads of a long job started last would run alone at the end of a run, one page after
    another, with every other worker idle (a 5,000-step job: 51 event pages, ~3 s at 50 ms;
    bench/NOTES.md); started first, they overlap everything else.
    """

    def __init__(self) -> None:
        self._heap: List[Any] = []
        self._now = time.time()
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, job: Dict[str, Any]) -> None:
        entry = (-training_seconds(job, self._now), next(self._order), job)  # ties: as listed
        heapq.heappush(self._heap, entry)

    def pop(self) -> Dict[str, Any]:
        return heapq.heappop(self._heap)[2]  # type: ignore[no-any-return]


def iter_listed_jobs(
    api: FineTuningApi,
    ledger: JobLedger,
    selected: Sequence[str],
    ahead: Optional[ListingAhead] = None,
    max_waiting: int = MAX_JOBS_WAITING,
) -> Iterator[Dict[str, Any]]:
    """Jobs some selected resource still needs, from the job list, the longest trained of
    those listed so far first (`LongestFirst`).

    Paging stops by the `StopRule`; the next page is fetched while the jobs listed wait, and
    taken in as soon as it has come, while fewer than `max_waiting` jobs wait (a page is
    waited for only when no listed job is left).
    Every listed job becomes known to the ledger, for every resource, so a resource selected
    later still finds it. The pages `ahead` read are taken first when it was started.
    """
    endpoint = api.endpoint(JOBS_PATH)
    rule = StopRule(ledger, selected)
    taken = ahead.take() if ahead is not None else None
    pages = taken if taken is not None else api.iter_pages(JOBS_PATH)
    waiting = LongestFirst()
    listed, read_to_end = False, False
    try:
        while True:
            while not listed and (not waiting or (len(waiting) < max_waiting and pages.ready())):
                page = next(pages, None)
                if page is None:
                    listed = read_to_end = True
                    break
                jobs = [require_item(item, endpoint, "job") for item in page]
                listed = rule.see(jobs)
                if not listed:
                    pages.fetch_next()  # while the jobs listed are read
                for job in jobs:
                    if ledger.needs(job["id"], selected):
                        ledger.register(job["id"])
                        waiting.add(job)
            if not waiting:
                break
            yield waiting.pop()
    finally:
        pages.close()
    # read to the end: known jobs not listed any more are gone
    ledger.finish_listing(rule.newest, vanished=rule.unseen_open if read_to_end else ())


def iter_configured_jobs(
    api: FineTuningApi, ledger: JobLedger, job_ids: Sequence[str], selected: Sequence[str]
) -> Iterator[Dict[str, Any]]:
    """The configured jobs some selected resource still needs, each fetched by id."""
    for job_id in dict.fromkeys(job_ids):  # keeps order, drops repeats
        if ledger.needs(job_id, selected):
            job = require_item(api.get_job(job_id), api.endpoint(f"{JOBS_PATH}/{job_id}"), "job")
            ledger.register(job_id)
            yield job
