"""Pages ahead: the next page is fetched on another thread only once it is wanted (further
ones while the reader's rule wants them, up to a depth), its
failure surfaces where the page is read, and closing never waits for it nor closes the pages
under it. (That a successful load makes exactly the requests it made before is kept by the
request counts of test_incremental and test_full_load.)"""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import Iterator, List

import pytest

from sources.openai_fine_tuning.http.read_ahead import ReadAhead
from tests.helpers import REPO

WAIT_S = 10.0  # a bound on waiting for the other thread, not a timing assertion


class Pages:
    """Pages 1..n; records the thread that fetched each page and whether it was closed."""

    def __init__(self, count: int, fail_at: int = 0) -> None:
        self.count = count
        self.fail_at = fail_at
        self.fetched_by: List[str] = []
        self.closed = False
        self.closed_event = threading.Event()
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
            self.closed_event.set()


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


def test_close_does_not_wait_for_a_fetch_under_way_and_closes_the_pages_after_it():
    pages = Pages(3)
    pages.release[2].clear()
    reader = ReadAhead(iter(pages))
    assert next(reader) == 1
    reader.fetch_next()
    assert pages.asked[2].wait(WAIT_S)  # page 2's fetch is under way, held
    reader.close()  # returns at once: the run's error line is not held up by that page
    assert not pages.closed  # never closed under the running fetch
    pages.release[2].set()
    assert pages.closed_event.wait(WAIT_S)
    assert len(pages.fetched_by) == 2  # page 3 never asked for


INTERRUPTED = """
import signal, threading, sys
sys.path.insert(0, {repo!r})
from sources.openai_fine_tuning.http.read_ahead import ReadAhead
release, closed = threading.Event(), threading.Event()
def pages():
    try:
        yield 1
        release.wait(30)
        yield 2
    finally:
        closed.set()
reader = ReadAhead(pages())
next(reader)
reader.fetch_next()
main = threading.main_thread().ident
threading.Timer(0.3, lambda: signal.pthread_kill(main, signal.SIGINT)).start()
try:
    next(reader)  # waits for page 2, held: Ctrl-C arrives here
except KeyboardInterrupt:
    print("interrupted")
reader.close()  # as the listing's `finally` does
print("closed at once:", not closed.is_set())
release.set()
print("pages closed after the fetch:", closed.wait(10))
"""


def test_ctrl_c_while_waiting_for_the_page_ahead_closes_cleanly():
    # the job list is read in dlt's main thread, where Ctrl-C lands: closing then must not
    # close the pages under the running fetch ("generator already executing")
    done = subprocess.run(
        [sys.executable, "-c", INTERRUPTED.format(repo=str(REPO))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == [
        "interrupted",
        "closed at once: True",
        "pages closed after the fetch: True",
    ]


class _Paginator:
    def __init__(self, has_next_page: bool) -> None:
        self.has_next_page = has_next_page


class _Page(list):
    """A page as dlt's paginate yields it: a list that carries its paginator."""

    def __init__(self, number: int, has_next_page: bool) -> None:
        super().__init__([number])
        self.paginator = _Paginator(has_next_page)


def test_after_a_page_that_says_it_is_the_last_nothing_is_fetched_ahead():
    fetched_by: List[str] = []

    def pages() -> Iterator[_Page]:
        for number, more in ((1, True), (2, False)):
            fetched_by.append(threading.current_thread().name)
            yield _Page(number, more)
        fetched_by.append(threading.current_thread().name)  # the end, found by whom

    reader = ReadAhead(pages())
    assert next(reader) == [1]
    reader.fetch_next()  # page 1 says more: fetched ahead
    assert next(reader) == [2]
    reader.fetch_next()  # page 2 says it is the last: no fetch, no thread
    with pytest.raises(StopIteration):
        next(reader)
    here = threading.current_thread().name
    assert fetched_by[0] == here and fetched_by[1].startswith("openai-ft-read-ahead")
    assert fetched_by[2:] == [here]  # the end was found by the reader, not ahead


def test_fetching_past_the_last_page_ends_the_pages():
    pages = Pages(1)
    reader = ReadAhead(iter(pages))
    assert next(reader) == 1
    reader.fetch_next()
    with pytest.raises(StopIteration):
        next(reader)
    assert pages.closed


def test_with_the_readers_rule_pages_are_fetched_ahead_up_to_the_depth():
    pages = Pages(8)
    reader = ReadAhead(iter(pages), depth=3)
    assert next(reader) == 1
    reader.fetch_next(keep_going=lambda page: True)  # the reader's rule: every page wants more
    assert pages.asked[4].wait(WAIT_S)  # pages 2, 3 and 4 asked for without the reader
    assert reader._ahead[-1].result(WAIT_S) == 4
    assert not pages.asked[5].is_set()  # held by the depth
    assert next(reader) == 2  # room for one more
    assert pages.asked[5].wait(WAIT_S)
    assert list(reader) == [3, 4, 5, 6, 7, 8]
    assert len(pages.fetched_by) == 8 and pages.closed


def test_pages_fetched_ahead_stop_where_the_readers_rule_does():
    pages = Pages(8)
    reader = ReadAhead(iter(pages), depth=4)
    assert next(reader) == 1
    reader.fetch_next(keep_going=lambda page: page < 3)  # page 3 reaches what was loaded
    assert next(reader) == 2
    assert next(reader) == 3
    reader.close()  # the reader stops at page 3, as its rule said
    assert pages.closed_event.wait(WAIT_S)
    assert len(pages.fetched_by) == 3  # page 4 never asked for
    assert not pages.asked[4].is_set()


def test_a_rule_that_raises_stops_fetching_ahead():
    pages = Pages(4)
    reader = ReadAhead(iter(pages))
    assert next(reader) == 1
    reader.fetch_next(keep_going=lambda page: 1 / 0)
    assert next(reader) == 2
    reader.close()
    assert pages.closed_event.wait(WAIT_S)
    assert not pages.asked[3].is_set()
