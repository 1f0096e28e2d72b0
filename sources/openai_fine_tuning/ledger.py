"""Per-job, per-resource incremental state, kept in the dlt source state and committed with
each load package (so a run that fails before its load advances nothing).

Layout of `source_state()["jobs_ledger"]` (version 2):

- `open`: every known job some resource is not finished with:
  `{job_id: {"settled": [resources], <resource>: <that resource's progress>}}`.
  Progress is `{"fingerprint"}` for `jobs`, `{"cursor_at", "cursor_ids"}` for a per-job list
  (the newest `created_at` loaded and the ids loaded at that second: several items can share
  one), `{"read": [file ids]}` for `results`.
- `settled`: `{"<resource>,<resource>,...": [job ids]}`: jobs every named resource has read
  after the job became terminal. A job moves here once all resources are settled for it, so
  the state of a large organization stays one id per finished job. A resource added later is
  not in the key, so it still reads those jobs.
- `files`: `{"read": [ids], "missing": [ids], "archived": [ids], "content_missing": [ids]}`:
  files whose metadata was loaded or answered 404; training files whose content was archived
  (`training_data`), or whose content answered 404 after their metadata was read. A file is
  requested once, ever (jobs share training files); after a 404 nothing of it is requested
  again.
- `listed_through`: the newest job `created_at` a listing saw: a later listing can stop once
  it has passed it and seen every job some selected resource still needs.
- `started`: resources that ran at least once (their tables were created).
- `target`: `{"digest", "description"}` of the destination and API identity the state belongs
  to (`StateOwner`), when the caller says.

A job is skipped only by the resources settled for it: running `checkpoints` alone never
hides a job from `jobs` or `events` later. A cursor per job (rather than one for all, as a
transformer's `dlt.sources.incremental` keeps) lets a late item of one job, older than items
loaded from other jobs, still be loaded.

Longer than the other modules on purpose: every part of the state's layout is read and written
here only, so the layout above stays true in one file.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from typing import Any, Dict, FrozenSet, Iterable, List, Optional, Sequence, Set, Tuple

from .errors import ConfigurationError

VERSION = 2
LEDGER_KEY = "jobs_ledger"  # the ledger's key in the source's dlt state
# State written before per-resource settling (jobs and checkpoints only): its settled jobs
# are settled for `checkpoints` only, so `jobs` writes their final row once more after an
# upgrade (a checkpoints-only run used to settle jobs the `jobs` table never got).
_V1_SETTLED = ("checkpoints",)


@dataclass
class StateOwner:
    """The target (destination and API identity) a run's state must belong to; filled by the
    caller before extraction starts. `digest` None: not checked."""

    digest: Optional[str] = None
    description: str = ""

    def owns(self, state: Dict[str, Any]) -> bool:
        """Whether `claim(state)` would take the state (unchecked owners take any)."""
        recorded = state.get("target")
        return self.digest is None or not recorded or recorded.get("digest") == self.digest

    def claim(self, state: Dict[str, Any]) -> None:
        """Records the owner in a new state; refuses a state recorded for another target."""
        if self.digest is None:
            return
        recorded = state.get("target")
        if not self.owns(state):
            raise ConfigurationError(
                f"This pipeline's state belongs to another target ({recorded.get('description')}),"
                f" not {self.description}: give this target its own --pipeline-name or"
                " --pipelines-dir (or leave --pipeline-name unset: the default is per target)"
            )
        state["target"] = {"digest": self.digest, "description": self.description}


def job_counts(state: Dict[str, Any]) -> Tuple[int, int]:
    """(open jobs, jobs settled for every resource) of a ledger's state."""
    settled = sum(len(ids) for ids in (state.get("settled") or {}).values())
    return len(state.get("open") or {}), settled


def fingerprint(record: Dict[str, Any]) -> str:
    """A short digest of a record's content, to skip rows that did not change."""
    payload = json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(payload.encode(), digest_size=8).hexdigest()


def _migrate(state: Dict[str, Any]) -> None:
    """Upgrades version-1 state (`settled` a list, flat open entries) in place."""
    if state.get("version") == VERSION or not state:
        state["version"] = VERSION
        return
    settled = state.get("settled") or []
    state["settled"] = {",".join(_V1_SETTLED): list(settled)} if settled else {}
    state["open"] = {
        job_id: {
            "settled": [],
            "jobs": {"fingerprint": entry.get("fingerprint")},
            "checkpoints": {
                "cursor_at": entry.get("cursor_at"),
                "cursor_ids": list(entry.get("cursor_ids", [])),
            },
        }
        for job_id, entry in (state.get("open") or {}).items()
    }
    state["version"] = VERSION


class JobLedger:
    """What has been loaded, per job and per resource. Safe across extraction threads.

    Args:
        state: The dict kept in dlt state; the ledger reads and writes it in place.
        resources: Every resource of the source (not only the selected ones).
    """

    def __init__(self, state: Dict[str, Any], resources: Sequence[str]) -> None:
        _migrate(state)
        self._state = state
        self._lock = threading.Lock()
        self._all = frozenset(resources)
        self._all_key = ",".join(sorted(resources))
        self._open: Dict[str, Dict[str, Any]] = state.setdefault("open", {})
        self._groups: Dict[str, List[str]] = state.setdefault("settled", {})
        self._group_of: Dict[str, str] = {
            job_id: key for key, ids in self._groups.items() for job_id in ids
        }
        files = state.setdefault("files", {"read": [], "missing": []})
        self._files_read: List[str] = files.setdefault("read", [])
        self._files_missing: List[str] = files.setdefault("missing", [])
        self._files_archived: List[str] = files.setdefault("archived", [])
        self._contents_missing: List[str] = files.setdefault("content_missing", [])
        self._files_done = set(self._files_read) | set(self._files_missing)
        self._contents_done = (
            set(self._files_archived) | set(self._files_missing) | set(self._contents_missing)
        )
        self._files_claimed: Set[str] = set()
        self._contents_claimed: Set[str] = set()
        self._started: List[str] = state.setdefault("started", [])

    # ---- jobs and their settled resources -------------------------------------------------

    @property
    def listed_through(self) -> Optional[int]:
        return self._state.get("listed_through")

    def _settled_for(self, job_id: str) -> FrozenSet[str]:
        key = self._group_of.get(job_id)
        if key is not None:
            return frozenset(key.split(","))
        entry = self._open.get(job_id)
        return frozenset(entry["settled"]) if entry else frozenset()

    def is_settled(self, job_id: str, resource: str) -> bool:
        with self._lock:
            return resource in self._settled_for(job_id)

    def needs(self, job_id: str, resources: Iterable[str]) -> bool:
        """True when one of `resources` is not settled for the job (or the job is new)."""
        with self._lock:
            settled = self._settled_for(job_id)
        return any(resource not in settled for resource in resources)

    def open_ids(self, resources: Iterable[str]) -> Set[str]:
        """Known jobs that one of `resources` is not settled for."""
        wanted = set(resources)
        with self._lock:
            ids = {job_id for job_id, e in self._open.items() if wanted - set(e["settled"])}
            for key, members in self._groups.items():
                if wanted - set(key.split(",")):
                    ids.update(members)
            return ids

    def _entry(self, job_id: str) -> Dict[str, Any]:
        """The job's open entry; created for a new job, re-opened for a job settled only for
        resources that existed back then. Call with the lock held."""
        entry = self._open.get(job_id)
        if entry is None:
            key = self._group_of.pop(job_id, None)
            settled = key.split(",") if key else []
            if key:
                self._groups[key].remove(job_id)
                if not self._groups[key]:
                    del self._groups[key]
            entry = self._open[job_id] = {"settled": settled}
        return entry

    def register(self, job_id: str) -> None:
        """A listing saw the job: it is known from now on, open for every unsettled resource."""
        with self._lock:
            self._entry(job_id)

    def settle(self, job_id: str, resource: str) -> None:
        """The resource read the job after it became terminal: never read it again."""
        with self._lock:
            entry = self._entry(job_id)
            entry.pop(resource, None)
            if resource not in entry["settled"]:
                entry["settled"].append(resource)
            if self._all <= set(entry["settled"]):
                del self._open[job_id]
                self._groups.setdefault(self._all_key, []).append(job_id)
                self._group_of[job_id] = self._all_key

    def finish_listing(self, newest_created_at: Optional[int], vanished: Iterable[str]) -> None:
        """Records a job listing: how far it saw, and known jobs no longer listed at all."""
        with self._lock:
            if newest_created_at is not None:
                previous = self._state.get("listed_through")
                self._state["listed_through"] = max(previous or 0, newest_created_at)
            for job_id in vanished:
                self._entry(job_id)
                del self._open[job_id]

    # ---- per-resource progress -----------------------------------------------------------

    def job_changed(self, job: Dict[str, Any]) -> bool:
        """True (and remembered) when the job differs from the last version loaded."""
        digest = fingerprint(job)
        with self._lock:
            progress = self._entry(job["id"]).setdefault("jobs", {})
            if progress.get("fingerprint") == digest:
                return False
            progress["fingerprint"] = digest
            return True

    def cursor(self, job_id: str, resource: str) -> Tuple[Optional[int], Set[str]]:
        """(newest `created_at` loaded of the job's list, ids loaded at that second)."""
        with self._lock:
            progress = self._open.get(job_id, {}).get(resource, {})
            return progress.get("cursor_at"), set(progress.get("cursor_ids", ()))

    def advance(
        self, job_id: str, resource: str, cursor_at: Optional[int], cursor_ids: Iterable[str]
    ) -> None:
        with self._lock:
            self._entry(job_id)[resource] = {
                "cursor_at": cursor_at,
                "cursor_ids": sorted(cursor_ids),
            }

    def results_read(self, job_id: str) -> Set[str]:
        """Results files of the job already loaded (or gone)."""
        with self._lock:
            return set(self._open.get(job_id, {}).get("results", {}).get("read", ()))

    def result_read(self, job_id: str, file_id: str) -> None:
        with self._lock:
            read = self._entry(job_id).setdefault("results", {}).setdefault("read", [])
            if file_id not in read:
                read.append(file_id)

    # ---- files (shared across jobs) ------------------------------------------------------

    def claim_file(self, file_id: str) -> bool:
        """True once per file, ever: the caller requests it. Later calls, from this run or
        any run after its load, answer False."""
        with self._lock:
            if file_id in self._files_done or file_id in self._files_claimed:
                return False
            self._files_claimed.add(file_id)
            return True

    def file_done(self, file_id: str, missing: bool = False) -> None:
        """The file's metadata was loaded, or it answered 404 (`missing`)."""
        with self._lock:
            if file_id not in self._files_done:
                self._files_done.add(file_id)
                (self._files_missing if missing else self._files_read).append(file_id)

    def claim_content(self, file_id: str) -> bool:
        """`claim_file` for a training file's content: True once per file, ever."""
        with self._lock:
            if file_id in self._contents_done or file_id in self._contents_claimed:
                return False
            self._contents_claimed.add(file_id)
            return True

    def content_done(self, file_id: str, missing: bool = False) -> None:
        """The file's content was archived (its metadata row with it), or the file answered
        404 (`missing`): neither is requested again."""
        with self._lock:
            if file_id in self._contents_done:
                return
            self._contents_done.add(file_id)
            if not missing:
                self._files_archived.append(file_id)
            elif file_id in self._files_read:  # its metadata is loaded: only the content is gone
                self._contents_missing.append(file_id)
                return
            if file_id not in self._files_done:
                self._files_done.add(file_id)
                (self._files_missing if missing else self._files_read).append(file_id)

    @property
    def missing_files(self) -> List[str]:
        with self._lock:
            return list(self._files_missing)

    # ---- tables ----------------------------------------------------------------------------

    def is_started(self, resource: str) -> bool:
        with self._lock:
            return resource in self._started

    def mark_started(self, resource: str) -> None:
        with self._lock:
            if resource not in self._started:
                self._started.append(resource)
