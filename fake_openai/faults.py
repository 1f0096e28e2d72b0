"""Seeded fault injection: what rate limits, flaky gateways and slow backends do to requests."""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Sequence

FAULT_KINDS = (
    "429_retry_after",  # 429 with `retry-after` in seconds
    "429_retry_after_ms",  # 429 with `retry-after-ms`
    "500",  # OpenAI error body
    "503",  # OpenAI error body
    "502_html",  # a gateway's HTML page
    "drop",  # headers and half the body, then the connection closes
    "slow",  # answers after `slow_seconds`, later than a short client timeout
)
# the kinds of `/v1` routes a plan can be limited to (`models`: the list and one model)
ROUTE_KINDS = ("jobs", "job", "checkpoints", "events", "file", "content", "models")


@dataclass
class FaultPlan:
    """Which requests fail and how: each `/v1` request fails with probability `rate`.

    Args:
        rate: Probability that a request gets a fault, 0..1.
        seed: Seed of the draws; the same seed and request order give the same faults.
        kinds: Fault kinds to draw from (see `FAULT_KINDS`), uniformly; repeat a kind to
            weight it (`["429_retry_after", "429_retry_after", "503"]`: two thirds 429).
        routes: Route kinds affected (see `ROUTE_KINDS`); all when None.
        retry_after: `retry-after` header value of `429_retry_after` (seconds or HTTP date).
        retry_after_ms: `retry-after-ms` header value of `429_retry_after_ms`.
        slow_seconds: Delay of a `slow` answer.
    """

    rate: float = 0.0
    seed: int = 0
    kinds: Sequence[str] = FAULT_KINDS
    routes: Optional[Sequence[str]] = None
    retry_after: str = "1"
    retry_after_ms: str = "20"
    slow_seconds: float = 2.0
    injected: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {FAULT_KINDS}")
        unknown = set(self.routes or ()) - set(ROUTE_KINDS)
        if unknown:
            raise ValueError(f"unknown fault routes {sorted(unknown)}; known: {ROUTE_KINDS}")
        if not 0 <= self.rate <= 1:
            raise ValueError(f"fault rate must be within 0..1, got {self.rate}")
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def draw(self, route_kind: str) -> Optional[str]:
        """The fault for the next request of this route kind, or None."""
        if self.routes is not None and route_kind not in self.routes:
            return None
        with self._lock:
            if self._rng.random() >= self.rate:
                return None
            kind = self._rng.choice(list(self.kinds))
            self.injected[kind] += 1
            return kind

    def snapshot(self) -> Dict[str, int]:
        with self._lock:
            return dict(self.injected)


class TokenBucket:
    """A request-rate limit as the API enforces one: `rate` requests per second on average,
    bursts of up to `burst`. Refused requests take no token.

    Args:
        rate: Tokens added per second (> 0).
        burst: Bucket size, and tokens at start; `max(1, rate)` when None.
        clock: Seconds, monotonic (a parameter so tests can drive it).
    """

    def __init__(
        self,
        rate: float,
        burst: Optional[float] = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = float(rate)
        self.burst = float(max(1.0, rate) if burst is None else burst)
        if self.burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        self._clock = clock
        self._tokens = self.burst
        self._stamp = clock()
        self._lock = threading.Lock()

    def acquire(self) -> Optional[int]:
        """Takes a token: None when admitted, else the milliseconds until one is available
        (at least 1), which the API sends as `retry-after-ms`."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens >= 1:
                self._tokens -= 1
                return None
            return max(1, math.ceil((1 - self._tokens) / self.rate * 1000))
