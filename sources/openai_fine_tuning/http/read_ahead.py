"""Pages ahead: the next pages of a list are requested while the reader works on this one.

A job's pages come one after another (each `after` cursor is the last id of the page before),
so a reader that fetches, then builds rows, then fetches again leaves the server idle while it
works and itself idle while the server works. Once the reader knows it wants the next page
(it has seen that this one does not reach what was loaded before), `fetch_next()` starts that
request on a background thread; the rows of this page are built meanwhile. Given the reader's
rule for wanting a next page (`keep_going`), the background thread applies it to each page it
fetches and goes on to the next at once, up to `READ_AHEAD_PAGES` pages ahead: the chain of
requests then no longer waits for the reader and dlt to take each page in (a 1M-step job is
8,000 pages in a row, bench/NOTES.md). A page is asked for only once the reader's rule says
it is wanted: a run that succeeds makes exactly the requests it made without reading ahead
(one that fails may have fetched up to that many pages past the one that failed).
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Deque, Generic, Iterator, Optional, TypeVar

from ..settings import MAX_WORKERS, READ_AHEAD_PAGES

T = TypeVar("T")

_POOL: Optional[ThreadPoolExecutor] = None
_POOL_LOCK = threading.Lock()
_DONE = object()  # what a fetch returns at the end of the pages


def _pool() -> ThreadPoolExecutor:
    """One pool for the process (its threads are started as needed, at most one per worker):
    at most one request per reader is ahead, and the request gate bounds them all."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(MAX_WORKERS, thread_name_prefix="openai-ft-read-ahead")
        return _POOL


class ReadAhead(Generic[T]):
    """Iterates `pages` as they are, fetching the next ones ahead when told to.

    The pages are advanced by one thread at a time: this reader's, or one pool thread while
    pages are fetched ahead (each fetch starts the next only once it has its page). A reader
    interrupted while it waits for a page (Ctrl-C reaches the main thread, which reads the job
    list) leaves it to `close()`, which never closes the pages under a running fetch.

    Args:
        pages: The pages.
        depth: At most this many pages fetched (or being fetched) ahead of the reader.
    """

    def __init__(self, pages: Iterator[T], depth: int = READ_AHEAD_PAGES) -> None:
        self._pages = pages
        self._depth = max(1, depth)
        self._lock = threading.Lock()
        # pages asked for after the one returned last, oldest first; one at most is running
        self._ahead: Deque[Future[object]] = deque()
        self._last: object = None  # the page returned last
        self._keep_going: Optional[Callable[[T], bool]] = None
        self._held = False  # the newest page fetched ahead wants its next: held by the depth
        self._closed = False

    def __iter__(self) -> ReadAhead[T]:
        return self

    def __next__(self) -> T:
        with self._lock:
            ahead = self._ahead[0] if self._ahead else None
        if ahead is not None:
            page = ahead.result()  # interrupted here: it stays in `_ahead`, for close()
            with self._lock:
                self._ahead.popleft()
                if self._held and not self._closed:
                    self._held = False
                    self._request_next()  # room again under the depth
        else:
            page = next(self._pages, _DONE)
        if page is _DONE:
            raise StopIteration
        self._last = page
        return page  # type: ignore[return-value]

    def fetch_next(self, keep_going: Optional[Callable[[T], bool]] = None) -> None:
        """Starts requesting the next page (once; it is returned by the next `next()`).

        Nothing to start after a last page: dlt's pages carry their paginator, which knows
        (the next `next()` then ends at once, with no request and no thread).

        Args:
            keep_going: The reader's rule for wanting the page after a page: from now on, each
                page fetched ahead that it holds true for (and that is not the last) has its
                next page requested too, without waiting for the reader. It must not raise
                (and is read as false if it does).
        """
        with self._lock:
            if keep_going is not None:
                self._keep_going = keep_going
            if self._ahead or self._closed or not _has_next(self._last):
                return
            self._request_next()

    def ready(self) -> bool:
        """True when the page fetched ahead has come (or failed): `next()` won't wait for it."""
        with self._lock:
            return bool(self._ahead) and self._ahead[0].done()

    def _request_next(self) -> None:
        """Queues the fetch of the page after the newest one asked for (the lock is held)."""
        # the future is queued before the pool can start it: an interrupt in between
        # leaves a fetch that close() can still cancel
        ahead: Future[object] = Future()
        self._ahead.append(ahead)
        _pool().submit(self._fetch, ahead)

    def _fetch(self, ahead: Future[object]) -> None:
        if not ahead.set_running_or_notify_cancel():
            return  # cancelled before it started: no request made
        try:
            page = next(self._pages, _DONE)
        except BaseException as error:  # noqa: BLE001 (handed to the reader as it is)
            ahead.set_exception(error)
            return
        with self._lock:
            if not self._closed and page is not _DONE and self._wants_next(page):
                if len(self._ahead) < self._depth:
                    self._request_next()
                else:
                    self._held = True
        ahead.set_result(page)

    def _wants_next(self, page: object) -> bool:
        if self._keep_going is None or not _has_next(page):
            return False
        try:
            return bool(self._keep_going(page))  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 (the reader meets the page's fault itself)
            return False

    def close(self) -> None:
        """Ends the pages without waiting: fetches not started yet are cancelled (no
        request); one under way closes the pages when it ends, on its own thread (its request
        is made; its page or failure no longer matters)."""
        with self._lock:
            self._closed = True
            queued = list(self._ahead)
            self._ahead.clear()
        running = [f for f in queued if not f.cancel() and not f.done()]
        if running:
            running[-1].add_done_callback(lambda _: self._close_pages())
            return
        self._close_pages()

    def _close_pages(self) -> None:
        close = getattr(self._pages, "close", None)
        if close is not None:
            close()


def _has_next(page: object) -> bool:
    """False after a page whose paginator knows it is the last (dlt's pages carry theirs)."""
    paginator = getattr(page, "paginator", None)
    return paginator is None or bool(paginator.has_next_page)
