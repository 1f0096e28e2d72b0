"""One job's life: its events, training steps, checkpoints and status changes, in time order.

Events are appended as the real API appends them: each is stamped no older than the job's
newest event, and a step's event comes before the checkpoint written at that step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from random import Random
from typing import Any, Dict, Optional, Protocol

from fake_openai.generation import TERMINAL_STATUSES
from fake_openai.models import root_model
from fake_openai.paging import NewestFirst
from fake_openai.training import TrainingPlan


class JobOwner(Protocol):
    """What a job needs of the world it lives in: ids, random draws, the clock, settings, and
    a place for its results file (a structural type: this module does not import the world)."""

    now: int
    null_metrics: bool
    extra_metrics: Dict[str, float]
    _rng: Random

    def _token(self, n: int) -> str: ...

    def _add_results_file(self, job: SandboxJob, at: int) -> str: ...


class StepEvent:
    """A step's `metrics` event, kept as (time, id, step): its message and data are built
    when served, from the step's values (a pure function of the step), so that a world of
    millions of steps stays small. Reads like a mapping for `created_at` and `id`, which is
    all that paging needs."""

    __slots__ = ("created_at", "id", "plan", "step", "total_steps", "null_metrics", "extra")

    def __init__(
        self,
        created_at: int,
        event_id: str,
        plan: TrainingPlan,
        step: int,
        null_metrics: bool,
        extra: Optional[Dict[str, Any]],
    ) -> None:
        self.created_at, self.id, self.plan, self.step = created_at, event_id, plan, step
        self.total_steps = plan.total_steps
        self.null_metrics = null_metrics
        self.extra = extra  # a copy of the world's `extra_metrics` when written, or None

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def as_dict(self) -> Dict[str, Any]:
        message, data = self.plan.event_data(self.step, self.total_steps, self.null_metrics)
        if self.extra:
            data.update(self.extra)
        return {
            "object": "fine_tuning.job.event",
            "id": self.id,
            "created_at": self.created_at,
            "level": "info",
            "message": message,
            "type": "metrics",
            "data": data,
        }


@dataclass
class SandboxJob:
    """One fine-tuning job and everything it owns; `record` is the API object.

    `world` supplies ids, random draws, the clock and settings (`null_metrics`,
    `extra_metrics`) and keeps the results files.
    """

    world: JobOwner
    record: Dict[str, Any]
    plan: TrainingPlan
    steps_per_checkpoint: int
    pace: int  # mean seconds per training step
    last_time: int  # created_at of the job's newest event: new events are never older
    checkpoints: NewestFirst = field(default_factory=NewestFirst)
    events: NewestFirst = field(default_factory=NewestFirst)
    started: bool = False

    @property
    def id(self) -> str:
        return str(self.record["id"])

    def event(
        self,
        message: str,
        at: int,
        type_: str = "message",
        level: str = "info",
        data: Any = None,
        exact: bool = False,
    ) -> Dict[str, Any]:
        """Appends an event stamped no older than the job's newest (`exact`: at `at`, and the
        job's clock does not move); returns it."""
        if not exact:
            at = max(at, self.last_time)
            self.last_time = at
        event: Dict[str, Any] = {
            "object": "fine_tuning.job.event",
            "id": "ftevent-" + self.world._token(24),
            "created_at": at,
            "level": level,
            "message": message,
            "type": type_,
        }
        if data is not None:
            event["data"] = data
        self.events.add(event)
        return event

    def created(self) -> None:
        """The events of a job just created: what it validates, and a warning without
        validation file."""
        record, at = self.record, self.last_time
        self.event(f"Created fine-tuning job: {self.id}", at)
        files = f"Validating training file: {record['training_file']}"
        if record["validation_file"]:
            self.event(f"{files} and validation file: {record['validation_file']}", at)
        else:
            self.event(files, at)
            warning = "No validation file: validation metrics will not be reported"
            self.event(warning, at, level="warn")

    def write_steps(self, upto: int, start: int, spread: bool = True) -> int:
        """Writes the metrics events of the steps after the written ones up to `upto`, from
        `start` on, each step a few seconds after the previous one (or in the same second
        unless `spread`); returns the time of the last step."""
        plan, world, add = self.plan, self.world, self.events.add
        rand, token, null_metrics = world._rng.random, world._token, world.null_metrics
        extra = dict(world.extra_metrics) or None
        plan.total_steps = max(plan.total_steps, upto)  # trained on past its plan
        at = max(start, self.last_time)
        span = 2 * self.pace if spread else 0
        for step in range(plan.written + 1, upto + 1):
            at += int(rand() * span)
            add(StepEvent(at, "ftevent-" + token(24), plan, step, null_metrics, extra))
            self.last_time = at
            epoch = plan.epoch_ends.get(step)
            if epoch is not None:
                self.event(f"Epoch {epoch}/{plan.n_epochs} completed", at)
        plan.written = max(plan.written, upto)
        return max(at, self.last_time)

    def checkpoint(self, created_at: Optional[int], overrides: Dict[str, Any]) -> Dict[str, Any]:
        """Writes the next checkpoint, after the steps up to it. An explicit `created_at` is
        kept; the steps' events are then stamped at it or at the newest event if newer."""
        world = self.world
        step = (len(self.checkpoints) + 1) * self.steps_per_checkpoint
        at = max(world.now, self.last_time)
        if step > self.plan.written:
            start = at if created_at is None else created_at
            at = self.write_steps(step, start, spread=created_at is None)
        if created_at is None:
            created_at = at
        metrics = self.plan.checkpoint_metrics(step, world.null_metrics)
        metrics.update(world.extra_metrics)
        metrics.update(overrides)
        checkpoint = {
            "object": "fine_tuning.job.checkpoint",
            "id": "ftckpt_" + world._token(24),
            "created_at": created_at,
            # the root base, also for a job trained on a fine-tuned model (as the API names it)
            "fine_tuned_model_checkpoint": (
                f"ft:{root_model(self.record['model'])}:sandbox::{self.id[-8:]}:ckpt-step-{step}"
            ),
            "fine_tuning_job_id": self.id,
            "metrics": metrics,
            "step_number": step,
        }
        self.checkpoints.add(checkpoint)
        self.last_time = max(self.last_time, created_at)
        return checkpoint

    def set_status(self, status: str, at: int) -> None:
        """Moves to `status` at `at` (or after the newest event); a job that succeeds first
        trains its remaining steps."""
        record = self.record
        if record["status"] == status:
            return
        if status == "succeeded":
            if not self.started:
                self.set_status("running", at)
            at = self.write_steps(self.plan.total_steps, at)
        record["status"] = status
        if status == "queued":
            self.event("Files validated, moving job to queued state", at)
        elif status == "running":
            self.started = True
            started = self.event("Fine-tuning job started", at)
            record["estimated_finish"] = started["created_at"] + 3600
        elif status in TERMINAL_STATUSES:
            self._finish(status, max(at, self.last_time))
        else:  # a status the spec does not list (e.g. `paused`)
            self.event(f"Fine-tuning job {status}", at)

    def _finish(self, status: str, at: int) -> None:
        record = self.record
        record["finished_at"] = at
        record["estimated_finish"] = None
        if status == "succeeded":
            model = f"ft:{root_model(record['model'])}:sandbox::{self.world._token(8)}"
            record["fine_tuned_model"] = model
            batch = record["hyperparameters"]["batch_size"]
            record["trained_tokens"] = self.plan.written * batch * 384
            record["result_files"] = [self.world._add_results_file(self, at)]
            self.event(f"New fine-tuned model created: {model}", at)
            self.event("The job has successfully completed", at)
        elif status == "failed":
            record["error"] = {
                "code": "invalid_training_file",
                "message": "The training file has too few examples.",
                "param": "training_file",
            }
            self.event("Job failed: the training file has too few examples", at, level="error")
        else:
            self.event("Fine-tuning job cancelled", at, level="warn")
