"""Counters of one run, for the summary a user sees (never stored in state or the destination)."""

import threading


class RunStats:
    """Requests sent (retries included) and jobs read on one run; safe across worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.jobs_seen = 0

    def count_request(self) -> None:
        with self._lock:
            self.requests += 1

    def count_job(self) -> None:
        with self._lock:
            self.jobs_seen += 1
