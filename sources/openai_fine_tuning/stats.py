"""Counters of one run, for the summary a user sees (never stored in state or the destination)."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import Dict, List, Optional


@dataclass(frozen=True)
class UnreadableFile:
    """A results file that could not be loaded on this run; it is tried again next run."""

    file_id: str
    job_id: str
    reason: str
    kind: str = "results"  # or "training" (a training or validation file)

    def line(self) -> str:
        return (
            f"{self.kind} file {self.file_id!r} of job {self.job_id!r} not loaded: {self.reason};"
            " it is tried again next run"
        )


class RunStats:
    """Requests sent (retries included), jobs read, what was skipped and why, and the lowest
    concurrency the rate limits left, on one run; safe across worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.jobs_seen = 0
        self.lowest_concurrency: Optional[int] = None
        self.missing_files: List[str] = []
        self.skipped: Counter[str] = Counter()  # table -> items that could not make a row
        self.unreadable_files: List[UnreadableFile] = []
        self.retries = 0
        self.rate_limited = 0  # 429 answers
        self.rows: Counter[str] = Counter()  # table -> rows extracted so far (progress)
        self.jobs_done: Counter[str] = Counter()  # resource -> jobs it finished (progress)
        self.paused_until = 0.0  # time.monotonic() until which a 429 holds every request
        self.training_files = 0  # training and validation files archived
        self.invalid_training_lines = 0  # their lines that are not JSON (blank ones too)
        self.non_utf8_files: List[str] = []  # archived with bad bytes replaced
        self.skipped_lists: Dict[str, str] = {}  # organization-level list -> why not read

    def skip_list(self, name: str, reason: str) -> None:
        with self._lock:
            self.skipped_lists[name] = reason

    def count_training_file(self, file_id: str, invalid_lines: int, utf8: bool) -> None:
        with self._lock:
            self.training_files += 1
            self.invalid_training_lines += invalid_lines
            if not utf8:
                self.non_utf8_files.append(file_id)

    def count_retry(self) -> None:
        with self._lock:
            self.retries += 1

    def count_rate_limited(self, pause_until: Optional[float]) -> None:
        with self._lock:
            self.rate_limited += 1
            if pause_until is not None:
                self.paused_until = max(self.paused_until, pause_until)

    def count_rows(self, table: str, rows: int) -> None:
        with self._lock:
            self.rows[table] += rows

    def count_job_done(self, resource: str) -> None:
        with self._lock:
            self.jobs_done[resource] += 1

    def count_request(self, concurrency: Optional[int] = None) -> None:
        with self._lock:
            self.requests += 1
            if concurrency is not None:
                self.lowest_concurrency = min(concurrency, self.lowest_concurrency or concurrency)

    def count_job(self) -> None:
        with self._lock:
            self.jobs_seen += 1

    def count_missing_file(self, file_id: str) -> None:
        with self._lock:
            if file_id not in self.missing_files:  # its metadata and content may both 404
                self.missing_files.append(file_id)

    def count_skipped(self, table: str) -> None:
        with self._lock:
            self.skipped[table] += 1

    def count_unreadable(self, problem: UnreadableFile) -> None:
        with self._lock:
            self.unreadable_files.append(problem)
