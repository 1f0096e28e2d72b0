"""The sandbox's data: fine-tuning jobs with their checkpoints, events and files, from a seed.

Everything is deterministic for a given seed, so tests can compare what was loaded with
`FineTuningWorld.truth_*` exactly. Time is a virtual clock (`now`) that only moves through
`advance()`, which lets running jobs train on (write steps and checkpoints) and finish. A job's
events are appended as the real API appends them: never older than the job's newest event.
The models the key sees (`GET /models`) come from the jobs and a catalog of base models whose
shutdown dates are relative to the world's `today`.

Longer than the other modules on purpose: it is the sandbox's one public object, and its
sections (building, time, raw edits for tests of bad input, reading, truth) are the API the
server, the tests and the benchmarks use; the logic behind each lives in `generation.py`,
`jobs.py`, `files.py`, `models.py` and `training.py`.
"""

from __future__ import annotations

import datetime
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
from fake_openai.models import (
    ANNOUNCE_AFTER,
    ModelCatalog,
    ModelEntry,
    UnknownModelError,
    azure_model,
    openai_model,
)
from fake_openai.paging import NewestFirst, UnknownCursorError
from fake_openai.training import METHODS, TrainingPlan

__all__ = [
    "FineTuningWorld",
    "UnknownCursorError",
    "UnknownFileError",
    "UnknownJobError",
    "UnknownModelError",
]

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
        big_training_file_bytes: Make one job's training file about this many bytes (a
            succeeded job's, without a quirk; see `big_training_file()`).
        today: The date models' shutdown dates are relative to (a date ahead stays ahead);
            `datetime.date.today()` when None.
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
        big_training_file_bytes: Optional[int] = None,
        today: Optional[datetime.date] = None,
    ) -> None:
        if max_steps < 10:
            raise ValueError(f"max_steps must be at least 10, got {max_steps}")
        if big_job_steps is not None and big_job_steps < 1:
            raise ValueError(f"big_job_steps must be positive, got {big_job_steps}")
        if big_training_file_bytes is not None and big_training_file_bytes < 1:
            raise ValueError(
                f"big_training_file_bytes must be positive, got {big_training_file_bytes}"
            )
        self.null_metrics = null_metrics
        self.max_steps = max_steps
        self._rng = generation.Random(seed)
        self._lock = threading.RLock()
        self._jobs: Dict[str, SandboxJob] = {}
        self._listing = NewestFirst()  # job records
        self._files = FileStore()
        self._results: Dict[str, Tuple[str, int]] = {}  # results file -> (job id, CSV rows)
        # training/validation file -> (noise key, examples, method) of its content
        self._datasets: Dict[str, Tuple[int, int, str]] = {}
        self._quirks: Dict[str, str] = {}  # quirk name -> file id
        self._big_training_file: Optional[str] = None
        self._fine_tuned_base: Optional[Tuple[str, str]] = None  # (parent job, child job)
        self.extra_metrics: Dict[str, float] = {}
        # a server whose `after` cursor is inclusive: each page of checkpoints and events after
        # a cursor starts with the cursor's own item, the last item of the page before
        self.pages_repeat_cursor_item = False
        self.now = START_TIME
        self.organization_id = "org-sandbox" + self._token(12)
        generation.generate(
            self, jobs, max_checkpoints, checkpoints_per_job, big_job_checkpoints, big_job_steps
        )
        generation.plan_files(self, big_training_file_bytes)
        today = datetime.date.today() if today is None else today
        self._models = ModelCatalog(today, self.now + ANNOUNCE_AFTER)
        self._model_patches: Dict[str, Dict[str, Any]] = {}  # raw fields set by `patch_model`
        generation.plan_models(self)

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
        model: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Creates a job that trained up to `checkpoints` checkpoints; returns its API record.

        `total_steps` fixes the planned steps (else drawn up to `max_steps`); `training_file`
        reuses an existing file instead of uploading a new one; `model` is what it trains on
        (e.g. an earlier job's fine-tuned model) instead of a drawn base model.
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
            drawn_model = generation.base_model(rng, method)  # drawn even if `model` is given
            record: Dict[str, Any] = {
                "object": "fine_tuning.job",
                "id": job_id,
                "model": drawn_model if model is None else model,
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
        key = rng.getrandbits(64)
        self._datasets[file_id] = (key, examples, method)
        self._files.add(record, jsonl_builder(key, examples, method))
        return file_id

    def _own_training_file(self, job_id: str) -> str:
        """Gives a job a training file of its own, uploaded shortly before it, instead of the
        one it shares; drawn from the old file's key, not from the world's draws."""
        job = self._job(job_id)
        old = job.record["training_file"]
        key, examples, method = self._datasets[old]
        rng = generation.Random(key)
        file_id = "file-" + rng.randbytes(22).translate(_TOKEN_TABLE).decode("ascii")
        created = job.record["created_at"] - rng.randint(60, 3600)
        record = data_file_record(file_id, created, "train", rng.randint(1, 99), False)
        self._datasets[file_id] = (rng.getrandbits(64), examples, method)
        self._files.add(record, jsonl_builder(*self._datasets[file_id]))
        job.record["training_file"] = file_id
        for event in job.events.items():  # "Validating training file: ..." names it
            if isinstance(event, dict) and old in event["message"]:
                event["message"] = event["message"].replace(old, file_id)
        return file_id

    def _set_dataset(
        self, file_id: str, quirk: Optional[str] = None, target_bytes: Optional[int] = None
    ) -> None:
        """Before its content is built: the file carries `quirk` or is about `target_bytes`."""
        key, examples, method = self._datasets[file_id]
        self._files.set_builder(file_id, jsonl_builder(key, examples, method, quirk, target_bytes))

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

    # ---- models ----------------------------------------------------------------------------

    def _model_entries(self) -> List[ModelEntry]:
        return self._models.entries(self._jobs.values(), self.organization_id, self.now)

    def list_models(self, azure: bool = False) -> List[Dict[str, Any]]:
        """What `GET /models` lists, in OpenAI's shape (or Azure's), in served order."""
        shape = azure_model if azure else openai_model
        with self._lock:
            return [
                {**shape(entry), **self._model_patches.get(entry.id, {})}
                for entry in self._model_entries()
            ]

    def patch_model(self, model_id: str, **fields: Any) -> None:
        """Sets raw fields of a listed model as served (e.g. an `owned_by` that is a number).

        Raises:
            UnknownModelError: The model is not listed.
        """
        with self._lock:
            self.get_model(model_id)
            self._model_patches.setdefault(model_id, {}).update(fields)

    def get_model(self, model_id: str, azure: bool = False) -> Dict[str, Any]:
        """What `GET /models/{model}` serves.

        Raises:
            UnknownModelError: The model is not listed (the API's 404).
        """
        shape = azure_model if azure else openai_model
        with self._lock:
            for entry in self._model_entries():
                if entry.id == model_id:
                    return {**shape(entry), **self._model_patches.get(entry.id, {})}
        raise UnknownModelError(model_id)

    def announce_shutdown(self, model_id: str, date: Optional[str]) -> None:
        """Sets a listed model's `shutdown_date` (`YYYY-MM-DD`), or clears it with None.

        Raises:
            UnknownModelError: The model is not listed.
            ValueError: `date` is not a `YYYY-MM-DD` date.
        """
        with self._lock:
            self.get_model(model_id)
            self._models.announce(model_id, date)

    def delete_model(self, model_id: str) -> None:
        """The owner deletes a fine-tuned model: no longer listed; its job keeps naming it.

        Raises:
            UnknownModelError: The model is not listed.
        """
        with self._lock:
            self.get_model(model_id)
            self._models.deleted.add(model_id)

    @property
    def today(self) -> datetime.date:
        """The date shutdown dates are relative to."""
        return self._models.today

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
            return self._job(job_id).checkpoints.page(after, limit, self.pages_repeat_cursor_item)

    def list_events(self, job_id: str, after: Optional[str], limit: int) -> Tuple[list, bool]:
        with self._lock:
            return self._job(job_id).events.page(after, limit, self.pages_repeat_cursor_item)

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

    def truth_training_files(self) -> Dict[str, bytes]:
        """File id -> exact content of every existing training and validation file a job
        names, in job-list order."""
        with self._lock:
            seen: Dict[str, bytes] = {}
            for record in self._listing.items():
                for name in (record.get("training_file"), record.get("validation_file")):
                    if isinstance(name, str) and name not in seen and self._files.exists(name):
                        seen[name] = self._files.content(name)
            return seen

    def quirk_files(self) -> Dict[str, str]:
        """Quirk name (see `files.QUIRKS`: `crlf`, `no_final_newline`, `u2028_emoji`, `bom`,
        `invalid_lines`) -> the file that carries it; each on its own file. A world of 8 jobs
        or more has them all; `invalid_lines` is the training file of a failed job."""
        with self._lock:
            return dict(self._quirks)

    def big_training_file(self) -> Optional[str]:
        """The file made big by `big_training_file_bytes`; None without that option."""
        return self._big_training_file

    def truth_models(self) -> List[Dict[str, Any]]:
        """Exactly what `GET /v1/models` lists, in served order."""
        return self.list_models()

    def deleted_model_ids(self) -> Set[str]:
        """Fine-tuned models their owner deleted: not listed, though their jobs name them."""
        with self._lock:
            return set(self._models.deleted)

    def own_date_model_id(self) -> str:
        """The fine-tuned model with a shutdown date of its own (its base has another).

        Raises:
            LookupError: No job succeeded in this world.
        """
        if self._models.own_date_model is None:
            raise LookupError("no fine-tuned model in this world carries its own date")
        return self._models.own_date_model

    def fine_tuned_base_job_id(self) -> str:
        """The job trained on an earlier job's fine-tuned model (its `model` is that `ft:`
        name; its own model and checkpoints keep the root base).

        Raises:
            LookupError: The world has none (it takes two succeeded jobs, as from 10 jobs on).
        """
        if self._fine_tuned_base is None:
            raise LookupError("no job in this world trained on a fine-tuned model")
        return self._fine_tuned_base[1]

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
