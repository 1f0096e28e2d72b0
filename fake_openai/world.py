"""The sandbox's data: fine-tuning jobs, their checkpoints and events, generated from a seed.

Everything is deterministic for a given seed, so tests can compare what was loaded with
`FineTuningWorld.truth_*` exactly. Time is a virtual clock (`now`) that only moves through
`advance()`, which lets running jobs write new checkpoints and finish.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

TERMINAL_STATUSES = ("succeeded", "failed", "cancelled")
ACTIVE_STATUSES = ("validating_files", "queued", "running")
BASE_MODELS = ("gpt-4o-mini-2024-07-18", "gpt-4.1-mini-2025-04-14", "gpt-4o-2024-08-06")
START_TIME = 1_750_000_000  # 2025-06-15, fixed so data does not depend on the wall clock


class UnknownJobError(KeyError):
    """Raised for a job id the world does not hold."""


class UnknownCursorError(ValueError):
    """Raised when `after` names no item of the list being paged."""


class NewestFirst:
    """A newest-first list of items written in any order, with O(1) cursor lookup.

    Among items of the same second the later written comes first, as on the API.
    """

    def __init__(self) -> None:
        self._written: List[Dict[str, Any]] = []
        self._desc: List[Dict[str, Any]] = []
        self._position: Dict[str, int] = {}
        self._dirty = False

    def add(self, item: Dict[str, Any]) -> None:
        self._written.append(item)
        self._dirty = True

    def __len__(self) -> int:
        return len(self._written)

    def items(self) -> List[Dict[str, Any]]:
        """Newest first."""
        if self._dirty:
            written = self._written
            order = sorted(
                range(len(written)), key=lambda i: (written[i]["created_at"], i), reverse=True
            )
            self._desc = [written[i] for i in order]
            self._position = {item["id"]: index for index, item in enumerate(self._desc)}
            self._dirty = False
        return self._desc

    def page(self, after: Optional[str], limit: int) -> Tuple[List[Dict[str, Any]], bool]:
        """The `limit` items after the item `after` (from the newest without it)."""
        items = self.items()
        start = 0
        if after is not None:
            if after not in self._position:
                raise UnknownCursorError(after)
            start = self._position[after] + 1
        # shallow copies: records change (status) only by replacing top-level values
        page = [dict(item) for item in items[start : start + limit]]
        return page, start + limit < len(items)


@dataclass
class SandboxJob:
    """One fine-tuning job and everything it owns; `record` is the API object."""

    record: Dict[str, Any]
    total_steps: int
    checkpoints: NewestFirst = field(default_factory=NewestFirst)
    events: NewestFirst = field(default_factory=NewestFirst)
    last_time: int = 0  # newest created_at among the job and its checkpoints

    @property
    def id(self) -> str:
        return str(self.record["id"])


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
    """

    def __init__(
        self,
        seed: int = 0,
        jobs: int = 12,
        max_checkpoints: int = 8,
        null_metrics: bool = False,
        checkpoints_per_job: Optional[int] = None,
        big_job_checkpoints: Optional[int] = None,
    ) -> None:
        self.null_metrics = null_metrics
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._jobs: Dict[str, SandboxJob] = {}
        self._listing = NewestFirst()  # job records
        self.extra_metrics: Dict[str, float] = {}
        self.now = START_TIME
        self.organization_id = "org-sandbox" + self._token(12)
        statuses = list(TERMINAL_STATUSES + ACTIVE_STATUSES)
        for index in range(jobs):
            # Oldest jobs are mostly finished; the newest are still moving.
            if index >= jobs - len(ACTIVE_STATUSES):
                status = ACTIVE_STATUSES[index - (jobs - len(ACTIVE_STATUSES))]
            elif index < len(statuses):
                status = statuses[index]
            else:
                status = self._rng.choice(TERMINAL_STATUSES + ("succeeded", "succeeded"))
            n_ckpt = self._rng.randint(0, max_checkpoints)
            if checkpoints_per_job is not None:
                n_ckpt = checkpoints_per_job
            if index == 0:
                n_ckpt = (
                    max(max_checkpoints, 3) if big_job_checkpoints is None else big_job_checkpoints
                )
            if status == "queued":
                n_ckpt = 0
            if status == "validating_files":
                n_ckpt = 0
            self.add_job(status=status, checkpoints=n_ckpt, validation=index % 4 != 1)
            self.now += self._rng.choice((0, 1, 7, 60, 3600))  # 0: jobs sharing a second

    # ---- building -------------------------------------------------------------------------

    def _token(self, n: int) -> str:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        return "".join(self._rng.choice(alphabet) for _ in range(n))

    def add_job(
        self,
        status: str = "running",
        checkpoints: int = 0,
        validation: bool = True,
        created_at: Optional[int] = None,
    ) -> Dict[str, Any]:
        """Creates a job with `checkpoints` checkpoints; returns its API record."""
        with self._lock:
            created = self.now if created_at is None else created_at
            model = self._rng.choice(BASE_MODELS)
            job_id = "ftjob-" + self._token(24)
            record: Dict[str, Any] = {
                "object": "fine_tuning.job",
                "id": job_id,
                "model": model,
                "created_at": created,
                "finished_at": None,
                "fine_tuned_model": None,
                "organization_id": self.organization_id,
                "result_files": [],
                "status": "validating_files",
                "validation_file": ("file-" + self._token(22)) if validation else None,
                "training_file": "file-" + self._token(22),
                "hyperparameters": {
                    "batch_size": self._rng.choice((1, 4, 8, 16)),
                    "learning_rate_multiplier": self._rng.choice((0.5, 1.0, 1.8, 2.0)),
                    "n_epochs": self._rng.choice((2, 3, 4)),
                },
                "trained_tokens": None,
                "error": None,
                "seed": self._rng.randint(1, 2**31 - 1),
                "estimated_finish": None,
                "integrations": None,
                "metadata": {"team": self._rng.choice(("search", "support"))}
                if self._rng.random() < 0.5
                else None,
                "method": {"type": "supervised", "supervised": {"hyperparameters": {}}},
            }
            record["method"]["supervised"]["hyperparameters"] = dict(record["hyperparameters"])
            job = SandboxJob(record, total_steps=max(checkpoints, 1) * 10 + 50, last_time=created)
            self._jobs[job_id] = job
            self._listing.add(record)
            self._event(job, "Validating training file", created)
            if status != "validating_files":
                self._set_status(job, "queued", created)
            if status not in ("validating_files", "queued"):
                self._set_status(job, "running", created)
            for _ in range(checkpoints):
                self.add_checkpoint(job_id)
            if status in TERMINAL_STATUSES:
                self._set_status(job, status, job.last_time)
            return record

    def _event(self, job: SandboxJob, message: str, at: int, data: Optional[dict] = None) -> None:
        event: Dict[str, Any] = {
            "object": "fine_tuning.job.event",
            "id": "ftevent-" + self._token(24),
            "created_at": at,
            "level": "error" if message.startswith("Job failed") else "info",
            "message": message,
            "type": "metrics" if data else "message",
        }
        if data:
            event["data"] = data
        job.events.add(event)

    def _set_status(self, job: SandboxJob, status: str, at: int) -> None:
        record = job.record
        record["status"] = status
        if status == "running":
            record["estimated_finish"] = at + 3600
            self._event(job, "Fine-tuning job started", at)
        elif status in TERMINAL_STATUSES:
            record["finished_at"] = at
            record["estimated_finish"] = None
            if status == "succeeded":
                suffix = self._token(8)
                record["fine_tuned_model"] = f"ft:{record['model']}:sandbox::{suffix}"
                record["trained_tokens"] = 1000 * (len(job.checkpoints) + 1)
                record["result_files"] = ["file-" + self._token(22)]
                self._event(job, "The job has successfully completed", at)
            elif status == "failed":
                record["error"] = {
                    "code": "invalid_training_file",
                    "message": "The training file has too few examples.",
                    "param": "training_file",
                }
                self._event(job, "Job failed: the training file has too few examples", at)
            else:
                self._event(job, "Fine-tuning job cancelled", at)

    def add_checkpoint(
        self, job_id: str, created_at: Optional[int] = None, **metric_overrides: Any
    ) -> Dict[str, Any]:
        """Writes the next checkpoint of a job; returns its API record."""
        with self._lock:
            job = self._job(job_id)
            step = (len(job.checkpoints) + 1) * 10
            if created_at is None:
                # Mostly minutes apart, sometimes in the same second as the previous one.
                created_at = max(self.now, job.last_time + self._rng.choice((0, 1, 90)))
            progress = step / job.total_steps
            train_loss = 2.2 * math.exp(-2.5 * progress) + self._rng.uniform(0, 0.05)
            metrics: Dict[str, Any] = {
                "step": float(step),
                "train_loss": round(train_loss, 6),
                "train_mean_token_accuracy": round(min(0.99, 0.45 + 0.5 * progress), 6),
            }
            if job.record["validation_file"]:
                metrics["valid_loss"] = round(train_loss * 1.1, 6)
                metrics["valid_mean_token_accuracy"] = round(min(0.98, 0.42 + 0.5 * progress), 6)
                full = self._rng.random()
                if full < 0.4:
                    metrics["full_valid_loss"] = round(train_loss * 1.07, 6)
                    metrics["full_valid_mean_token_accuracy"] = round(0.43 + 0.5 * progress, 6)
                elif full < 0.7 and self.null_metrics:
                    metrics["full_valid_loss"] = None
                    metrics["full_valid_mean_token_accuracy"] = None
            metrics.update(self.extra_metrics)
            metrics.update(metric_overrides)
            checkpoint = {
                "object": "fine_tuning.job.checkpoint",
                "id": "ftckpt_" + self._token(24),
                "created_at": created_at,
                "fine_tuned_model_checkpoint": (
                    f"ft:{job.record['model']}:sandbox::{job.id[-8:]}:ckpt-step-{step}"
                ),
                "fine_tuning_job_id": job.id,
                "metrics": metrics,
                "step_number": step,
            }
            job.checkpoints.add(checkpoint)
            job.last_time = max(job.last_time, created_at)
            self._event(job, f"Step {step}: training loss={train_loss:.4f}", created_at, metrics)
            return checkpoint

    # ---- time -----------------------------------------------------------------------------

    def advance(self, seconds: int = 3600, new_checkpoints: int = 2, finish: bool = False) -> None:
        """Moves the clock; running jobs write `new_checkpoints` each, queued ones start."""
        with self._lock:
            self.now += seconds
            for job in list(self._jobs.values()):
                status = job.record["status"]
                if status in ("validating_files", "queued"):
                    self._set_status(job, "queued" if status != "queued" else "running", self.now)
                elif status == "running":
                    for _ in range(new_checkpoints):
                        self.add_checkpoint(job.id)
            if finish:
                self.finish_running_jobs()

    def finish_running_jobs(self, status: str = "succeeded") -> List[str]:
        """Moves every non-terminal job to `status`; returns their ids."""
        with self._lock:
            finished = []
            for job in self._jobs.values():
                if job.record["status"] not in TERMINAL_STATUSES:
                    self._set_status(job, status, max(self.now, job.last_time))
                    finished.append(job.id)
            return finished

    def set_status(self, job_id: str, status: str) -> None:
        """Sets any status string, including ones the spec does not list (e.g. `paused`)."""
        with self._lock:
            self._set_status(self._job(job_id), status, self.now)

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

    # ---- truth (what a correct load must contain) -------------------------------------------

    def truth_jobs(self) -> List[Dict[str, Any]]:
        with self._lock:
            return [dict(record) for record in self._listing.items()]

    def truth_checkpoints(self) -> List[Dict[str, Any]]:
        with self._lock:
            return [dict(c) for job in self._jobs.values() for c in job.checkpoints.items()]

    def job_ids(self) -> List[str]:
        """Newest first, as the API lists them."""
        with self._lock:
            return [record["id"] for record in self._listing.items()]

    def status_of(self, job_id: str) -> str:
        with self._lock:
            return str(self._job(job_id).record["status"])
