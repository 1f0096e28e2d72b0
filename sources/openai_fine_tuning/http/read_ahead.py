"""One page ahead: the next page of a list is requested while the reader works on this one.

A job's pages come one after another (each `after` cursor is the last id of the page before),
so a reader that fetches, then builds rows, then fetches again leaves the server idle while it
works and itself idle while the server works. Once the reader knows it wants the next page
(it has seen that this one does not reach what was loaded before), `fetch_next()` starts that
request on a background thread; the rows of this page are built meanwhile. A page is asked for
only after the reader said it wants it: a run makes exactly the requests it made without
reading ahead.
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

    Args:
        pages: The pages; advanced by one thread at a time (this reader's, or the pool's).
    """

    def __init__(self, pages: Iterator[T]) -> None:
        self._pages = pages
        self._ahead: Optional[Future[object]] = None

    def __iter__(self) -> ReadAhead[T]:
        return self

    def __next__(self) -> T:
        ahead, self._ahead = self._ahead, None
        page = ahead.result() if ahead is not None else next(self._pages, _DONE)
        if page is _DONE:
            raise StopIteration
        return page  # type: ignore[return-value]

    def fetch_next(self) -> None:
        """Starts requesting the next page (once; it is returned by the next `next()`)."""
        if self._ahead is None:
            self._ahead = _pool().submit(next, self._pages, _DONE)

    def close(self) -> None:
        """Waits for a page being fetched ahead (its request is made; its failure no longer
        matters), then closes the pages."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            ahead.exception()
        close = getattr(self._pages, "close", None)
        if close is not None:
            close()
