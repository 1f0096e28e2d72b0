"""Seeded fault injection: what rate limits, flaky gateways and slow backends do to requests."""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence

FAULT_KINDS = (
    "429_retry_after",  # 429 with `retry-after` in seconds
    "429_retry_after_ms",  # 429 with `retry-after-ms`
    "500",  # OpenAI error body
    "503",  # OpenAI error body
    "502_html",  # a gateway's HTML page
    "drop",  # headers and half the body, then the connection closes
    "slow",  # answers after `slow_seconds`, later than a short client timeout
)
# the list kinds of `/v1` routes a plan can be limited to
ROUTE_KINDS = ("jobs", "job", "checkpoints", "events")


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
