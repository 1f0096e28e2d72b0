"""Counters of one run, for the summary a user sees (never stored in state or the destination)."""

import threading
from typing import Optional


class RunStats:
    """Requests sent (retries included), jobs read, and the lowest concurrency the rate limits
    left, on one run; safe across worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.jobs_seen = 0
        self.lowest_concurrency: Optional[int] = None
        # the resolved `workers` setting, so the caller sizes dlt's extract pool to match
        self.workers: Optional[int] = None

    def count_request(self, concurrency: Optional[int] = None) -> None:
        with self._lock:
            self.requests += 1
            if concurrency is not None:
                self.lowest_concurrency = min(concurrency, self.lowest_concurrency or concurrency)

    def count_job(self) -> None:
        with self._lock:
            self.jobs_seen += 1
