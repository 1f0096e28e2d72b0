"""How many requests may be in flight: fewer after a rate limit, more as answers succeed."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Optional

from . import stopping

MAX_PACE = 1.0  # seconds: a 429's wait longer than this paces starts no further apart
PACE_DECAY = 0.97  # each success shortens the pace by 3%


class RequestGate:
    """Bounds concurrent requests with additive increase / multiplicative decrease (AIMD).

    The limit starts at `max_concurrency`. A 429 halves it (at most once per `cooldown`
    seconds, so one burst of 429s counts once); each success adds `1 / limit`, about one more
    slot per window of successes. A 429 that says when to come back (`retry-after-ms`)
    pauses every request start until then: the server's budget is shared, so the other
    workers would only collect 429s of their own. An optional `max_requests_per_second`
    spaces request starts.

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
        # seconds between request starts the server's 429s asked for (its retry-after: the
        # time to its next free slot), so paused workers start one by one, not together
        self._paced = 0.0
        self._last_success = float("-inf")
        self._cooldown = cooldown
        self._last_decrease = float("-inf")
        self._clock = clock
        self._sleep = sleep
        self._condition = threading.Condition()

    def __enter__(self) -> RequestGate:
        with self._condition:
            while self.in_flight >= int(self.limit):
                self._condition.wait(timeout=0.2)  # and look up: the run may be stopping
                self._sleep(0)
            self.in_flight += 1
            start_at = max(self._clock(), self._next_start, self._paused_until)
            self._next_start = start_at + max(self._interval, self._paced)
        delay = start_at - self._clock()
        if delay > 0:
            self._sleep(delay)
        return self

    def __exit__(self, *exc: Any) -> None:
        with self._condition:
            self.in_flight -= 1
            self._condition.notify_all()

    def rate_limited(self, retry_after: Optional[float] = None) -> None:
        """A 429 came back: halve the limit (not below 1); with the server's `retry_after`
        (seconds), start no request before then."""
        with self._condition:
            now = self._clock()
            if retry_after is not None:
                self._paused_until = max(self._paused_until, now + retry_after)
                self._paced = min(MAX_PACE, max(self._paced, retry_after))
            if now - self._last_decrease >= self._cooldown:
                self._last_decrease = now
                self.limit = max(1.0, self.limit / 2)
                self.lowest_limit = min(self.lowest_limit, int(self.limit))

    def succeeded_within(self, seconds: float) -> bool:
        """True when some request got an answer below 400 in the last `seconds`: a 429 now
        means "slower", not "no"."""
        with self._condition:
            return self._clock() - self._last_success <= seconds

    def succeeded(self) -> None:
        """An answer came back fine: grow the limit by 1/limit, up to the maximum."""
        with self._condition:
            self._last_success = self._clock()
            self._paced *= PACE_DECAY  # probe for more as answers come back fine
            if self.limit < self.max_concurrency:
                self.limit = min(float(self.max_concurrency), self.limit + 1.0 / self.limit)
                self._condition.notify_all()
