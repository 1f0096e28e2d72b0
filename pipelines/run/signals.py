"""SIGINT and SIGTERM stop a run within a bounded time, with exit code 130 or 143.

The handler asks the worker threads to stop waiting and raises in the main thread, which then
unwinds and reports as for any error. An exception raised at an arbitrary point can leave a
lock held that a worker thread then waits on forever (seen: a worker blocked on a future's
lock, and the interpreter waiting for that worker at exit). So a watchdog ends the process
`STOP_GRACE_S` after the signal whatever the threads do, and a second signal ends it at once.
Nothing is lost either way: dlt commits the state with the rows it loads, and the next run
finishes a package a stopped run left.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from types import FrameType
from typing import Iterator, Optional

from pipelines.errors import Terminated, stopped_message
from sources.openai_fine_tuning.http.stopping import request_stop

STOP_GRACE_S = 3.0
ORPHAN_POLL_S = 0.5
SIGNALS = (signal.SIGINT, signal.SIGTERM)

_reported = threading.Event()  # the run's one error line is out
_stopping = threading.Event()  # a signal came


def mark_reported() -> None:
    """The run's error line has been printed: the watchdog must not print another."""
    _reported.set()


def exit_now(signum: int) -> None:
    """Ends the process with the signal's exit code, without waiting for any thread."""
    if not _reported.is_set():
        print(f"openai-ft: error: {stopped_message(signum)}", file=sys.stderr)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(128 + signum)


def _stop(signum: int, frame: Optional[FrameType]) -> None:
    if _stopping.is_set():  # asked twice: do not wait for the unwinding
        exit_now(signum)
    _stopping.set()
    request_stop()  # wake the worker threads out of their waits
    watchdog = threading.Timer(STOP_GRACE_S, exit_now, args=(signum,))
    watchdog.daemon = True
    watchdog.start()
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


@contextmanager
def handle_signals() -> Iterator[None]:
    """Installs the handlers for the block. Explicitly: a process started in the background
    by a shell inherits SIGINT ignored, and SIGTERM would kill on the spot. The previous
    handlers come back afterwards; off the main thread (an embedding program's worker)
    signals stay the program's business."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _reported.clear()
    _stopping.clear()
    previous = {signum: signal.signal(signum, _stop) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _exit_when_orphaned(parent: int) -> None:
    while True:
        time.sleep(ORPHAN_POLL_S)
        if os.getppid() != parent:
            os._exit(1)


def _watch_parent() -> None:
    """Runs in each forked child (dlt's normalize worker processes): end with the parent.

    A parent killed with SIGKILL (the OOM killer, `timeout -s KILL`) cannot stop its pool,
    and its workers would wait on the pool's queue forever, ~130 MB each, one pair per kill.
    """
    watcher = threading.Thread(
        target=_exit_when_orphaned, args=(os.getppid(),), name="openai-ft-orphan", daemon=True
    )
    watcher.start()


_watching = threading.Lock()
_watch_installed = False


def end_children_with_parent() -> None:
    """Makes every process this one forks from now on exit when this one is gone."""
    global _watch_installed
    with _watching:
        if not _watch_installed:
            os.register_at_fork(after_in_child=_watch_parent)
            _watch_installed = True
