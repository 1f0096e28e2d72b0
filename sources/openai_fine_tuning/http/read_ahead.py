"""One page ahead: the next page of a list is requested while the reader works on this one.

A job's pages come one after another (each `after` cursor is the last id of the page before),
so a reader that fetches, then builds rows, then fetches again leaves the server idle while it
works and itself idle while the server works. Once the reader knows it wants the next page
(it has seen that this one does not reach what was loaded before), `fetch_next()` starts that
request on a background thread; the rows of this page are built meanwhile. A page is asked for
only after the reader said it wants it: a run that succeeds makes exactly the requests it made
without reading ahead (one that fails while a page is being fetched has made that request).
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, Iterator, Optional, TypeVar

from ..settings import MAX_WORKERS

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
    """Iterates `pages` as they are, fetching the next one ahead when told to.

    The pages are advanced by one thread at a time: this reader's, or a pool thread while a
    page is fetched ahead. A reader interrupted while it waits for that page (Ctrl-C reaches
    the main thread, which reads the job list) leaves it to `close()`, which never closes the
    pages under the running fetch.

    Args:
        pages: The pages.
    """

    def __init__(self, pages: Iterator[T]) -> None:
        self._pages = pages
        self._ahead: Optional[Future[object]] = None
        self._last: object = None  # the page returned last

    def __iter__(self) -> ReadAhead[T]:
        return self

    def __next__(self) -> T:
        if self._ahead is not None:
            page = self._ahead.result()  # interrupted here: `_ahead` stays, for close()
            self._ahead = None
        else:
            page = next(self._pages, _DONE)
        if page is _DONE:
            raise StopIteration
        self._last = page
        return page  # type: ignore[return-value]

    def fetch_next(self) -> None:
        """Starts requesting the next page (once; it is returned by the next `next()`).

        Nothing to start after a last page: dlt's pages carry their paginator, which knows
        (the next `next()` then ends at once, with no request and no thread)."""
        paginator = getattr(self._last, "paginator", None)
        if paginator is not None and not paginator.has_next_page:
            return
        if self._ahead is None:
            # the future is known before the pool can start it: an interrupt in between
            # leaves a fetch that close() can still cancel
            self._ahead = ahead = Future()
            _pool().submit(self._fetch, ahead)

    def ready(self) -> bool:
        """True when the page fetched ahead has come (or failed): `next()` won't wait for it."""
        return self._ahead is not None and self._ahead.done()

    def _fetch(self, ahead: Future[object]) -> None:
        if not ahead.set_running_or_notify_cancel():
            return  # cancelled before it started: no request made
        try:
            ahead.set_result(next(self._pages, _DONE))
        except BaseException as error:  # noqa: BLE001 (handed to the reader as it is)
            ahead.set_exception(error)

    def close(self) -> None:
        """Ends the pages without waiting: a fetch not started yet is cancelled (no request);
        one under way closes the pages when it ends, on its own thread (its request is made;
        its page or failure no longer matters)."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and not ahead.cancel() and not ahead.done():
            ahead.add_done_callback(lambda _: self._close_pages())
            return
        self._close_pages()

    def _close_pages(self) -> None:
        close = getattr(self._pages, "close", None)
        if close is not None:
            close()
