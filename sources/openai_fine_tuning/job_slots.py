"""How many jobs' readers work at once: every worker while the run waits on the API, fewer
while this process's CPU is what it waits on.

A run's readers are threads of one Python process: while answers take long (an API at 50 ms
or more) eight of them keep eight requests in flight; while answers come at once (a server
next door), the readers turn pages into rows and compete for the one interpreter lock, and
each handoff costs CPU of its own: a 1,000-job first load at 0 ms took 22 s with eight at
work and 17.5 s with two (bench/NOTES.md). So a reader takes a slot for each step of its
job (a page fetched and made into rows) and gives it back before handing rows to dlt, and the
number of slots follows the process's CPU use, measured over short windows: at least
`CPU_BUSY` of a core, one slot fewer (down to `FEWEST_JOB_SLOTS`); below `CPU_IDLE`, twice
as many (up to the workers). A slot is never held across a yield: dlt resumes a job's
generator on whichever pool thread is free, and a slot held by a generator waiting to be
resumed could leave every thread waiting for a slot.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Optional

from . import settings
from .http import stopping


class JobSlots:
    """Slots for job steps, as many as the workers while the CPU is not the bottleneck.

    Args:
        most: The most slots (the worker count).
        clock: Monotonic clock in seconds (injectable for tests).
        cpu: This process's CPU seconds, all threads (injectable for tests).
    """

    def __init__(
        self,
        most: int,
        clock: Callable[[], float] = time.monotonic,
        cpu: Callable[[], float] = time.process_time,
    ) -> None:
        self.most = most
        self.fewest = min(most, settings.FEWEST_JOB_SLOTS)
        self.limit = most
        self.lowest_limit = most
        self.in_use = 0
        self.waiting = 0
        self._clock = clock
        self._cpu = cpu
        self._window: Optional[tuple[float, float]] = None  # (clock, cpu) at its start
        self._condition = threading.Condition()

    def __enter__(self) -> JobSlots:
        with self._condition:
            if self._window is None:  # the first step starts the first window
                self._window = (self._clock(), self._cpu())
            self.waiting += 1
            try:
                while self.in_use >= self.limit:
                    self._condition.wait(timeout=0.2)  # and look up: the run may be stopping
                    stopping.wait(0)
            finally:
                self.waiting -= 1
            self.in_use += 1
        return self

    def __exit__(self, *exc: Any) -> None:
        with self._condition:
            self.in_use -= 1
            before = self.limit
            self._measure()
            # a freed slot, and any the measure added, can each be taken by one waiter
            self._condition.notify(1 + max(0, self.limit - before))

    def _measure(self) -> None:
        """Ends the window once it is `JOB_SLOTS_WINDOW` long: fewer slots when the CPU was
        busy, more when it was idle."""
        assert self._window is not None
        started, cpu_at_start = self._window
        now = self._clock()
        if now - started < settings.JOB_SLOTS_WINDOW:
            return
        cpu_now = self._cpu()
        busy = (cpu_now - cpu_at_start) / (now - started)
        if busy >= settings.CPU_BUSY:
            self.limit = max(self.fewest, self.limit - 1)
            self.lowest_limit = min(self.lowest_limit, self.limit)
        elif busy < settings.CPU_IDLE:
            self.limit = min(self.most, self.limit * 2)
        self._window = (now, cpu_now)
