"""Per-job incremental state, kept in the dlt source state and committed with each load package.

Layout of `source_state()["jobs_ledger"]`:

- `settled`: ids of jobs whose status was terminal when read and whose checkpoints were
  read after that. They are never requested again.
- `open`: every other known job: `{"created_at", "fingerprint", "cursor_at", "cursor_ids"}`.
  `cursor_at` is the newest checkpoint `created_at` loaded for that job and `cursor_ids`
  the ids loaded at that second (several checkpoints can share one second).
- `listed_through`: the newest job `created_at` seen by a job listing. A later listing
  can stop once it has passed it and seen every open job.

A cursor per job (rather than one for all jobs, as a transformer's `dlt.sources.incremental`
keeps) is what lets a late checkpoint of one job, older than checkpoints loaded from other
jobs, still be loaded.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple


def fingerprint(record: Dict[str, Any]) -> str:
    """A short digest of a record's content, to skip rows that did not change."""
    payload = json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(payload.encode(), digest_size=8).hexdigest()


class JobLedger:
    """What has been loaded per job. Safe to update from extraction worker threads.

    Args:
        state: The dict kept in dlt state; the ledger reads and writes it in place.
    """

    def __init__(self, state: Dict[str, Any]) -> None:
        self._state = state
        self._lock = threading.Lock()
        self._open: Dict[str, Dict[str, Any]] = state.setdefault("open", {})
        settled: List[str] = state.setdefault("settled", [])
        self._settled_list = settled
        self._settled: Set[str] = set(settled)

    def is_empty(self) -> bool:
        """True before the first run (and after a full refresh): nothing recorded yet."""
        with self._lock:
            return not (self._open or self._settled or "listed_through" in self._state)

    @property
    def listed_through(self) -> Optional[int]:
        return self._state.get("listed_through")

    def is_settled(self, job_id: str) -> bool:
        return job_id in self._settled

    def open_ids(self) -> Set[str]:
        with self._lock:
            return set(self._open)

    def _entry(self, job_id: str) -> Dict[str, Any]:
        return self._open.setdefault(job_id, {"cursor_at": None, "cursor_ids": []})

    def job_changed(self, job: Dict[str, Any]) -> bool:
        """True (and remembered) when the job differs from the last version loaded."""
        digest = fingerprint(job)
        with self._lock:
            if job["id"] in self._settled:
                # settled earlier in this same run (resources run in any order): its final
                # version is new, and never read again after this
                return True
            entry = self._entry(job["id"])
            entry["created_at"] = job["created_at"]
            if entry.get("fingerprint") == digest:
                return False
            entry["fingerprint"] = digest
            return True

    def cursor(self, job_id: str) -> Tuple[Optional[int], Set[str]]:
        """(newest checkpoint `created_at` loaded, ids loaded at that second)."""
        with self._lock:
            entry = self._open.get(job_id, {})
            return entry.get("cursor_at"), set(entry.get("cursor_ids", ()))

    def advance(self, job_id: str, cursor_at: Optional[int], cursor_ids: Iterable[str]) -> None:
        with self._lock:
            entry = self._entry(job_id)
            entry["cursor_at"] = cursor_at
            entry["cursor_ids"] = sorted(cursor_ids)

    def settle(self, job_id: str) -> None:
        """The job is final and fully read: drop its cursor, never request it again."""
        with self._lock:
            self._open.pop(job_id, None)
            if job_id not in self._settled:
                self._settled.add(job_id)
                self._settled_list.append(job_id)

    def finish_listing(self, newest_created_at: Optional[int], vanished: Iterable[str]) -> None:
        """Records a job listing: how far it saw, and open jobs no longer listed at all."""
        with self._lock:
            if newest_created_at is not None:
                previous = self._state.get("listed_through")
                self._state["listed_through"] = max(previous or 0, newest_created_at)
            for job_id in vanished:
                self._open.pop(job_id, None)
