"""A process-wide stop request: Ctrl-C or SIGTERM wakes worker threads out of their waits.

Signals reach only the main thread. Worker threads sleeping before a retry, or held by the
request gate during a rate-limit pause, would keep the run alive for up to a minute after the
user asked it to stop; they wait on this event instead of sleeping, and give up when it is set.
"""

from __future__ import annotations

import threading

from ..errors import FineTuningSourceError

_STOP = threading.Event()


class StoppedError(FineTuningSourceError):
    """A worker gave up its wait because the run is stopping."""

    exit_code = 130


def request_stop() -> None:
    """Asks every waiting worker to give up (called from a signal handler)."""
    _STOP.set()


def stop_requested() -> bool:
    """Whether a stop was asked (for a worker between two requests)."""
    return _STOP.is_set()


def clear_stop() -> None:
    """A new run starts: forget an earlier stop request of this process."""
    _STOP.clear()


def wait(seconds: float) -> None:
    """Sleeps `seconds`, or raises `StoppedError` as soon as a stop is requested."""
    if seconds > 0 and _STOP.wait(seconds) or _STOP.is_set():
        raise StoppedError("stopped while waiting to retry")
