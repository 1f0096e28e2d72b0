"""One page ahead: the next page is fetched on another thread only once it is wanted, its
failure surfaces where the page is read, and closing waits for it. (That a load makes exactly
the requests it made before is kept by the request counts of test_incremental and
test_full_load.)"""

from __future__ import annotations

import threading
from typing import Iterator, List

import pytest

from sources.openai_fine_tuning.http.read_ahead import ReadAhead

WAIT_S = 10.0  # a bound on waiting for the other thread, not a timing assertion


class Pages:
    """Pages 1..n; records the thread that fetched each page and whether it was closed."""

    def __init__(self, count: int, fail_at: int = 0) -> None:
        self.count = count
        self.fail_at = fail_at
        self.fetched_by: List[str] = []
        self.closed = False
        self.asked = {n: threading.Event() for n in range(1, count + 1)}
        self.release = {n: threading.Event() for n in range(1, count + 1)}
        for event in self.release.values():
            event.set()

    def __iter__(self) -> Iterator[int]:
        try:
            for page in range(1, self.count + 1):
                self.asked[page].set()
                assert self.release[page].wait(WAIT_S)
                self.fetched_by.append(threading.current_thread().name)
                if page == self.fail_at:
                    raise ConnectionError(f"page {page} lost")
                yield page
        finally:
            self.closed = True


def test_pages_come_in_order_and_each_is_fetched_once():
    pages = Pages(3)
    reader = ReadAhead(iter(pages))
    seen = []
    for page in reader:
        reader.fetch_next()
        reader.fetch_next()  # a second call does not fetch a second page
        seen.append(page)
    assert seen == [1, 2, 3]
    assert len(pages.fetched_by) == 3


def test_the_next_page_is_fetched_on_another_thread_while_this_one_is_worked_on():
    pages = Pages(2)
    pages.release[2].clear()  # page 2 is held until the test lets it go
    reader = ReadAhead(iter(pages))
    assert next(reader) == 1
    reader.fetch_next()
    assert pages.asked[2].wait(WAIT_S)  # asked for before the reader asks
    pages.release[2].set()
    assert next(reader) == 2
    assert pages.fetched_by[0] == threading.current_thread().name
    assert pages.fetched_by[1].startswith("openai-ft-read-ahead")


def test_no_page_is_fetched_that_was_not_wanted():
    pages = Pages(3)
    reader = ReadAhead(iter(pages))
    assert next(reader) == 1
    reader.close()  # the reader reached what was loaded before: no fetch_next
    assert pages.fetched_by == [threading.current_thread().name]
    assert not pages.asked[2].is_set()
    assert pages.closed


def test_a_failure_fetching_ahead_is_raised_where_the_page_is_read():
    pages = Pages(3, fail_at=2)
    reader = ReadAhead(iter(pages))
    assert next(reader) == 1
    reader.fetch_next()  # does not raise: the failure belongs to page 2
    with pytest.raises(ConnectionError, match="page 2 lost"):
        next(reader)


def test_close_waits_for_the_page_fetched_ahead_then_closes_the_pages():
    pages = Pages(3)
    pages.release[2].clear()
    reader = ReadAhead(iter(pages))
    assert next(reader) == 1
    reader.fetch_next()
    assert pages.asked[2].wait(WAIT_S)
    closer = threading.Thread(target=reader.close)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive() and not pages.closed  # still waiting for page 2
    pages.release[2].set()
    closer.join(WAIT_S)
    assert not closer.is_alive() and pages.closed
    assert len(pages.fetched_by) == 2  # page 3 never asked for


def test_fetching_past_the_last_page_ends_the_pages():
    pages = Pages(1)
    reader = ReadAhead(iter(pages))
    assert next(reader) == 1
    reader.fetch_next()
    with pytest.raises(StopIteration):
        next(reader)
    assert pages.closed
