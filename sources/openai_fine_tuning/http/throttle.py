"""How many requests may be in flight and how fast they start: fewer and slower after a rate
limit, more and faster as answers succeed."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Callable, Deque, Optional

from . import stopping

WINDOW = 1.0  # seconds of successful request starts the admitted rate is measured over
MIN_SAMPLES = 5  # or the last this many starts, when a window holds fewer (a slow server)
BACKOFF = 0.9  # the pace after a measure, and each cut, is 90% of the rate before
# each start the pace holds back quickens it by 0.25% (5% a second at 20 requests/s): per
# start, not per second, so a slow server sees as few 429s per request as a fast one
PROBE = 0.0025
FLOOR = 0.7  # a cut below 70% of the measure measures again (see `_slow_down`)


class RequestGate:
    """Bounds concurrent requests with AIMD and, once the server rate-limits, paces their starts.

    Concurrency: the limit starts at `max_concurrency`. A 429 halves it (at most once per
    `cooldown` seconds, so one burst of 429s counts once); each success adds `1 / limit`, about
    one more slot per window of successes.

    Pause: a 429 that says when to come back (`retry-after-ms`, `retry-after`) holds every
    request start until then: the server's budget is shared, so the other workers would only
    collect 429s of their own.

    Pace: nothing is paced before a 429 that says when to come back (a rate limit; a bare 429
    could be anything). Then request starts are spaced at the rate the server admits, measured
    from the start times of successful requests (no header needed: OpenAI's limits, a proxy's
    and the sandbox's all show in it). Until a `WINDOW` of starts after that 429 is measured,
    starts go no faster than the larger of the measure and `1 / retry-after`, the lowest of
    the window's 429s (a token bucket's retry-after is the time to its next token, at most one
    token's interval, so this is never below its rate): the server stays just busy, and the
    window measures what it admits, not what we sent. The pace is then `BACKOFF` times that
    measure; each start it holds back quickens it by `PROBE` (the limit may rise, the measure
    may be low); a 429 of a request started after the last cut cuts it by `BACKOFF`, and a cut
    below `FLOOR` times the measure measures again. With pauses alone the paused workers all
    started at the pause's end: about one 429 per admitted request at 20 requests/s, 0.05 now.
    An optional `max_requests_per_second` caps the rate of starts throughout.

    Args:
        max_concurrency: Upper bound of requests in flight (the worker count).
        max_requests_per_second: Cap of request starts per second; None for no cap.
        cooldown: Seconds during which further 429s do not lower the limit again.
        clock: Monotonic clock in seconds (injectable for tests).
        sleep: Sleep function (injectable for tests).
    """

    def __init__(
        self,
        max_concurrency: int,
        max_requests_per_second: Optional[float] = None,
        cooldown: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = stopping.wait,
    ) -> None:
        self.max_concurrency = max_concurrency
        self.limit = float(max_concurrency)
        self.lowest_limit = max_concurrency
        self.in_flight = 0
        self._interval = 1.0 / max_requests_per_second if max_requests_per_second else 0.0
        self._next_start = 0.0
        self._paused_until = 0.0
        self.rate: Optional[float] = None  # starts per second the pace allows; None: no pace
        self._measuring_since: Optional[float] = None  # set during the window after a 429
        self._floor = 0.0  # a cut below this measures again
        self._fresh_after = float("-inf")  # 429s of earlier starts belong to the last cut
        # start times of successful requests, the last WINDOW of them (see `_measured`)
        self._admitted: Deque[float] = deque()
        self._latest = float("-inf")  # the latest of them
        self._last_success = float("-inf")
        self._cooldown = cooldown
        self._last_decrease = float("-inf")
        self._clock = clock
        self._sleep = sleep
        self._condition = threading.Condition()

    def __enter__(self) -> float:
        """Waits for a slot and the request's start time; returns that time (clock seconds),
        which `rate_limited` and `succeeded` take as `started`."""
        with self._condition:
            while self.in_flight >= int(self.limit):
                self._condition.wait(timeout=0.2)  # and look up: the run may be stopping
                self._sleep(0)
            self.in_flight += 1
            now = self._clock()
            start_at = max(now, self._next_start, self._paused_until)
            interval = self._interval
            if self.rate is not None and 1.0 / self.rate > interval:
                interval = 1.0 / self.rate
                if self._next_start > now:  # the pace holds this start back: probe for more
                    self.rate *= 1 + PROBE
            self._next_start = start_at + interval
        delay = start_at - self._clock()
        if delay > 0:
            self._sleep(delay)
        return start_at

    def __exit__(self, *exc: Any) -> None:
        with self._condition:
            self.in_flight -= 1
            # one slot is free: one waiter can take it (every waiter waits for the same thing;
            # waking them all would have all but one go back to sleep, on every request)
            self._condition.notify()

    def _measured(self) -> float:
        """Successful starts per second in the WINDOW up to the latest start that succeeded:
        requests started since have not all answered yet, so a count up to now would come out
        short by the requests in flight (half of it at 20/s and 0.5 s latency). Over the last
        MIN_SAMPLES starts instead when the window holds fewer."""
        if not self._admitted:
            return 0.0
        span = self._latest - self._admitted[0]
        if span <= WINDOW:
            return len(self._admitted) / WINDOW
        return (len(self._admitted) - 1) / span

    def _measured_since(self, since: float) -> bool:
        """True when the measure covers only starts after `since`, a WINDOW of them."""
        if not self._admitted:
            return False
        return self._admitted[0] >= since and self._latest - since >= WINDOW

    def rate_limited(
        self, retry_after: Optional[float] = None, started: Optional[float] = None
    ) -> None:
        """A 429 came back: halve the limit (not below 1); with the server's `retry_after`
        (seconds), start no request before then; slow the pace (see the class).

        Args:
            retry_after: The server's wait, if it sent a usable one.
            started: When the refused request started (`__enter__`'s value): a 429 of a
                request started before the last cut took effect is part of the same burst.
                None: counts as a new burst.
        """
        with self._condition:
            now = self._clock()
            if retry_after is not None:
                self._paused_until = max(self._paused_until, now + retry_after)
            if now - self._last_decrease >= self._cooldown:
                self._last_decrease = now
                self.limit = max(1.0, self.limit / 2)
                self.lowest_limit = min(self.lowest_limit, int(self.limit))
            self._slow_down(now, retry_after, started)

    def _slow_down(
        self, now: float, retry_after: Optional[float], started: Optional[float]
    ) -> None:
        """The pace's part of `rate_limited` (see the class)."""
        if self.rate is not None and self._measuring_since is None:
            if started is not None and started < self._fresh_after:
                return  # a start given out before the last cut: that burst counted
            # starts already given out keep the old spacing: their 429s are this burst's
            self._fresh_after = max(now, self._next_start)
            if BACKOFF * self.rate >= self._floor:
                self.rate *= BACKOFF
                return
            # Below FLOOR of the measure: what the server admits changed (a budget shared with
            # other clients), or its 429s are not about our rate (at random: an overloaded
            # server, a fault plan; what it admits then follows our pace down, so the cuts
            # would never end): measure again.
            self.rate = None
        measured = self._measured()
        since = self._measuring_since
        if self.rate is None or since is None:
            # only a 429 that says when to come back starts a pace: that is a rate limit
            if retry_after:
                self.rate, self._measuring_since = max(measured, 1.0 / retry_after), now
        elif self._measured_since(since):
            self._measuring_since = None
            self.rate = BACKOFF * measured
            self._floor = FLOOR * measured
            self._fresh_after = max(now, self._next_start)
        elif retry_after:
            self.rate = min(self.rate, max(measured, 1.0 / retry_after))

    def succeeded_within(self, seconds: float) -> bool:
        """True when some request got an answer below 400 in the last `seconds`: a 429 now
        means "slower", not "no"."""
        with self._condition:
            return self._clock() - self._last_success <= seconds

    def succeeded(self, started: Optional[float] = None) -> None:
        """An answer came back fine: grow the limit by 1/limit, up to the maximum.

        Args:
            started: When the request started (`__enter__`'s value), counted in the admitted
                rate; None: now.
        """
        with self._condition:
            now = self._last_success = self._clock()
            started = now if started is None else started
            self._admitted.append(started)  # as answers come: a little out of order
            self._latest = max(self._latest, started)
            while len(self._admitted) > MIN_SAMPLES and self._admitted[0] <= self._latest - WINDOW:
                self._admitted.popleft()
            if self.limit < self.max_concurrency:
                self.limit = min(float(self.max_concurrency), self.limit + 1.0 / self.limit)
                self._condition.notify_all()
