"""The sandbox's data: fine-tuning jobs with their checkpoints, events and files, from a seed.

Everything is deterministic for a given seed, so tests can compare what was loaded with
`FineTuningWorld.truth_*` exactly. Time is a virtual clock (`now`) that only moves through
`advance()`, which lets running jobs train on (write steps and checkpoints) and finish. A job's
events are appended as the real API appends them: never older than the job's newest event.
"""

from __future__ import annotations

import threading
from typing import Any, Dict, List, Optional, Set, Tuple

from fake_openai import generation
from fake_openai.files import (
    FileStore,
    UnknownFileError,
    data_file_record,
    jsonl_builder,
    results_file_record,
)
from fake_openai.jobs import SandboxJob
from fake_openai.paging import NewestFirst, UnknownCursorError
from fake_openai.training import METHODS, TrainingPlan

__all__ = ["FineTuningWorld", "UnknownCursorError", "UnknownFileError", "UnknownJobError"]

TERMINAL_STATUSES = generation.TERMINAL_STATUSES
ACTIVE_STATUSES = generation.ACTIVE_STATUSES
START_TIME = 1_750_000_000  # 2025-06-15, fixed so data does not depend on the wall clock
_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_TOKEN_TABLE = bytes(_ALPHABET[i % len(_ALPHABET)] for i in range(256))


class UnknownJobError(KeyError):
    """Raised for a job id the world does not hold."""


class FineTuningWorld:
    """All jobs of one fake organization. Thread-safe: the server reads it from many threads.

    Args:
        seed: Seed of every random choice.
        jobs: Number of jobs generated at start.
        max_checkpoints: Upper bound of checkpoints for a generated job (one job gets
            `max(max_checkpoints, 3)` so that it spans several pages at small page sizes).
        null_metrics: Send `full_valid_*` as explicit nulls before a full validation ran, as
            the API reference describes; the spec types them `number`, so off by default.
        checkpoints_per_job: Every generated job (but queued or validating ones) gets exactly
            this many checkpoints instead of 0..max_checkpoints.
        big_job_checkpoints: Checkpoints of the oldest job, instead of `max(max_checkpoints, 3)`.
        max_steps: Upper bound of a generated job's `total_steps` (at least 10).
        big_job_steps: `total_steps` of one generated job (a succeeded one other than the
            `big_job_checkpoints` job when there is one), so that its events span many pages.
    """

    def __init__(
        self,
        seed: int = 0,
        jobs: int = 12,
        max_checkpoints: int = 8,
        null_metrics: bool = False,
        checkpoints_per_job: Optional[int] = None,
        big_job_checkpoints: Optional[int] = None,
        max_steps: int = 300,
        big_job_steps: Optional[int] = 1200,
    ) -> None:
        if max_steps < 10:
            raise ValueError(f"max_steps must be at least 10, got {max_steps}")
        if big_job_steps is not None and big_job_steps < 1:
            raise ValueError(f"big_job_steps must be positive, got {big_job_steps}")
        self.null_metrics = null_metrics
        self.max_steps = max_steps
        self._rng = generation.Random(seed)
        self._lock = threading.RLock()
        self._jobs: Dict[str, SandboxJob] = {}
        self._listing = NewestFirst()  # job records
        self._files = FileStore()
        self._results: Dict[str, Tuple[str, int]] = {}  # results file -> (job id, CSV rows)
        self.extra_metrics: Dict[str, float] = {}
        self.now = START_TIME
        self.organization_id = "org-sandbox" + self._token(12)
        generation.generate(
            self, jobs, max_checkpoints, checkpoints_per_job, big_job_checkpoints, big_job_steps
        )

    # ---- building -------------------------------------------------------------------------

    def _token(self, n: int) -> str:
        return self._rng.randbytes(n).translate(_TOKEN_TABLE).decode("ascii")

    def add_job(
        self,
        status: str = "running",
        checkpoints: int = 0,
        validation: bool = True,
        created_at: Optional[int] = None,
        method: str = "supervised",
        *,
        total_steps: Optional[int] = None,
        training_file: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Creates a job that trained up to `checkpoints` checkpoints; returns its API record.

        `total_steps` fixes the planned steps (else drawn up to `max_steps`); `training_file`
        reuses an existing file instead of uploading a new one.
        """
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; known: {METHODS}")
        with self._lock:
            rng = self._rng
            created = self.now if created_at is None else created_at
            job_id = "ftjob-" + self._token(24)
            hyperparameters = generation.hyperparameters(rng)
            # checkpoints the job will have written when it ends, spread over its steps
            planned = checkpoints + (0 if status == "succeeded" else rng.randint(1, 3))
            n_epochs = hyperparameters["n_epochs"]
            if total_steps is None:
                total_steps = generation.draw_steps(rng, self.max_steps, planned, n_epochs)
            steps = max(total_steps, planned)
            method_record, graders = generation.method(rng, method, hyperparameters)
            record: Dict[str, Any] = {
                "object": "fine_tuning.job",
                "id": job_id,
                "model": generation.base_model(rng, method),
                "created_at": created,
                "finished_at": None,
                "fine_tuned_model": None,
                "organization_id": self.organization_id,
                "result_files": [],
                "status": "validating_files",
                "validation_file": self._data_file(created, "valid", method)
                if validation
                else None,
                "training_file": training_file or self._data_file(created, "train", method),
                "hyperparameters": hyperparameters,
                "trained_tokens": None,
                "error": None,
                "seed": rng.randint(1, 2**31 - 1),
                "estimated_finish": None,
                "integrations": None,
                "metadata": generation.metadata(rng),
                "method": method_record,
            }
            plan = TrainingPlan(rng.getrandbits(64), method, steps, n_epochs, validation, graders)
            pace = 25 if method == "reinforcement" else rng.choice((1, 1, 2, 4))
            per_checkpoint = max(1, steps // max(planned, 1))
            job = SandboxJob(self, record, plan, per_checkpoint, pace, last_time=created)
            self._jobs[job_id] = job
            self._listing.add(record)
            job.created()
            at = created
            if status != "validating_files":
                at += rng.randint(5, 60)
                job.set_status("queued", at)
            if status not in ("validating_files", "queued"):
                job.set_status("running", at + rng.randint(0, 300))
            for _ in range(checkpoints):
                job.checkpoint(None, {})
            if status in ("running", "failed", "cancelled"):  # on its way to the next one
                partial = plan.written + rng.randint(0, per_checkpoint - 1)
                job.write_steps(min(partial, plan.total_steps), job.last_time)
            if status in TERMINAL_STATUSES:
                job.set_status(status, job.last_time)
            return record

    def _data_file(self, job_created: int, kind: str, method: str) -> str:
        """Uploads a training or validation file shortly before the job that uses it."""
        rng = self._rng
        file_id = "file-" + self._token(22)
        created = job_created - rng.randint(60, 86_400)
        expires = rng.random() < 0.35  # some uploads were given an expiry
        record = data_file_record(file_id, created, kind, rng.randint(1, 99), expires)
        examples = rng.randint(40, 400) if kind == "train" else rng.randint(10, 60)
        self._files.add(record, jsonl_builder(rng.getrandbits(64), examples, method))
        return file_id

    def _add_results_file(self, job: SandboxJob, at: int) -> str:
        """The results CSV of a job that just succeeded: the steps trained so far."""
        file_id = "file-" + self._token(22)
        plan, steps = job.plan, job.plan.written
        self._files.add(results_file_record(file_id, at), lambda: plan.result_csv(steps), True)
        self._results[file_id] = (job.id, steps)
        return file_id

    def add_checkpoint(
        self, job_id: str, created_at: Optional[int] = None, **metric_overrides: Any
    ) -> Dict[str, Any]:
        """Writes the next checkpoint of a job (first the steps up to it); returns its record.

        An explicit `created_at` is kept as is; the steps' events are then stamped at it, or
        at the job's newest event if that is newer.
        """
        with self._lock:
            return self._job(job_id).checkpoint(created_at, metric_overrides)

    # ---- time -----------------------------------------------------------------------------

    def advance(self, seconds: int = 3600, new_checkpoints: int = 2, finish: bool = False) -> None:
        """Moves the clock; running jobs write `new_checkpoints` each, queued ones start."""
        with self._lock:
            self.now += seconds
            for job in list(self._jobs.values()):
                status = job.record["status"]
                if status in ("validating_files", "queued"):
                    job.set_status("queued" if status != "queued" else "running", self.now)
                elif status == "running":
                    for _ in range(new_checkpoints):
                        job.checkpoint(None, {})
            if finish:
                self.finish_running_jobs()

    def finish_running_jobs(self, status: str = "succeeded") -> List[str]:
        """Moves every non-terminal job to `status`; returns their ids."""
        with self._lock:
            finished = []
            for job in self._jobs.values():
                if job.record["status"] not in TERMINAL_STATUSES:
                    job.set_status(status, max(self.now, job.last_time))
                    finished.append(job.id)
            return finished

    def set_status(self, job_id: str, status: str) -> None:
        """Sets any status string, including ones the spec does not list (e.g. `paused`)."""
        with self._lock:
            self._job(job_id).set_status(status, self.now)

    # ---- raw edits, for tests of bad input ---------------------------------------------------

    def add_event(
        self,
        job_id: str,
        message: str,
        *,
        type: str = "message",  # noqa: A002 - the API's field name
        level: str = "info",
        data: Any = None,
        created_at: Optional[int] = None,
    ) -> Dict[str, Any]:
        """Appends any event: `data` need not be an object, `created_at` may be any int (an
        explicit one is kept as is and does not move the job's clock)."""
        with self._lock:
            job = self._job(job_id)
            at = max(self.now, job.last_time) if created_at is None else created_at
            event = job.event(message, at, type, level, data, exact=created_at is not None)
            return dict(event)

    def patch_job(self, job_id: str, **fields: Any) -> None:
        """Sets raw fields of a job record (e.g. `finished_at` in milliseconds)."""
        with self._lock:
            self._job(job_id).record.update(fields)
            self._listing.touch()

    def patch_file(self, file_id: str, **fields: Any) -> None:
        """Sets raw fields of a file record."""
        with self._lock:
            self._files.patch(file_id, fields)

    def set_file_content(self, file_id: str, content: bytes) -> None:
        """Replaces what `/content` serves (e.g. with a broken CSV); `bytes` follows."""
        with self._lock:
            self._files.set_content(file_id, content)

    def delete_file(self, file_id: str) -> None:
        """The file answers 404 from now on; jobs keep naming it."""
        with self._lock:
            self._files.delete(file_id)

    # ---- reading (what the HTTP routes serve) -----------------------------------------------

    def _job(self, job_id: str) -> SandboxJob:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise UnknownJobError(job_id) from None

    def get_job(self, job_id: str) -> Dict[str, Any]:
        with self._lock:
            return dict(self._job(job_id).record)

    def list_jobs(self, after: Optional[str], limit: int) -> Tuple[list, bool]:
        with self._lock:
            return self._listing.page(after, limit)

    def list_checkpoints(self, job_id: str, after: Optional[str], limit: int) -> Tuple[list, bool]:
        with self._lock:
            return self._job(job_id).checkpoints.page(after, limit)

    def list_events(self, job_id: str, after: Optional[str], limit: int) -> Tuple[list, bool]:
        with self._lock:
            return self._job(job_id).events.page(after, limit)

    def get_file(self, file_id: str) -> Dict[str, Any]:
        """The file's API record; `UnknownFileError` (404) if it does not exist."""
        with self._lock:
            return self._files.record(file_id)

    def file_content(self, file_id: str) -> bytes:
        """What `GET /files/{id}/content` serves."""
        with self._lock:
            return self._files.content(file_id)

    def job_steps(self, job_id: str) -> int:
        """Training steps written so far (one metrics event each)."""
        with self._lock:
            return self._job(job_id).plan.written

    def total_steps(self, job_id: str) -> int:
        with self._lock:
            return self._job(job_id).plan.total_steps

    # ---- truth (what a correct load must contain) -------------------------------------------

    def truth_jobs(self) -> List[Dict[str, Any]]:
        with self._lock:
            return [dict(record) for record in self._listing.items()]

    def truth_checkpoints(self) -> List[Dict[str, Any]]:
        with self._lock:
            return [dict(c) for job in self._jobs.values() for c in job.checkpoints.items()]

    def truth_events(self) -> Dict[str, List[Dict[str, Any]]]:
        """Job id -> its events as the API serves them, newest first."""
        with self._lock:
            return {job.id: job.events.copies() for job in self._jobs.values()}

    def _referenced_files(self) -> List[str]:
        """Every file id a job names, each once, in job-list order."""
        seen: Dict[str, None] = {}
        for record in self._listing.items():
            names = [record.get("training_file"), record.get("validation_file")]
            names += record.get("result_files") or []
            seen.update((name, None) for name in names if isinstance(name, str))
        return list(seen)

    def truth_files(self) -> List[Dict[str, Any]]:
        """The records of every existing file a job names, each once."""
        with self._lock:
            ids = self._referenced_files()
            return [self._files.record(i) for i in ids if self._files.exists(i)]

    def deleted_file_ids(self) -> Set[str]:
        """Files a job names that answer 404."""
        with self._lock:
            return {i for i in self._referenced_files() if not self._files.exists(i)}

    def truth_results(self) -> List[Dict[str, Any]]:
        """One dict per row of every existing results file, from the jobs' step values."""
        with self._lock:
            rows = []
            for file_id in self._referenced_files():
                if file_id not in self._results or not self._files.exists(file_id):
                    continue
                job_id, steps = self._results[file_id]
                ids = {"file_id": file_id, "fine_tuning_job_id": job_id}
                rows += [{**ids, **row} for row in self._jobs[job_id].plan.result_rows(steps)]
            return rows

    def job_ids(self) -> List[str]:
        """Newest first, as the API lists them."""
        with self._lock:
            return [record["id"] for record in self._listing.items()]

    def status_of(self, job_id: str) -> str:
        with self._lock:
            return str(self._job(job_id).record["status"])
