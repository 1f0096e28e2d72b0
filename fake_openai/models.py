"""The models a key sees: base models with their shutdown dates, and the organization's
fine-tuned models and checkpoints, in OpenAI's shape and in Azure OpenAI's.

Shutdown dates are relative to the world's `today` (not to its virtual clock, which starts in
2025): a date "ahead" or "passed" must stay so whenever the tests run. The list is built from
the jobs on every read, so a job that succeeds later lists its model, and a date announced as
the clock moves shows up on the next read.
"""

from __future__ import annotations

import calendar
import datetime
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

from fake_openai.generation import BASE_MODELS, REINFORCEMENT_MODEL

__all__ = [
    "ANNOUNCE_AFTER",
    "BASE_CATALOG",
    "BaseModel",
    "ModelCatalog",
    "ModelEntry",
    "UnknownModelError",
    "azure_model",
    "openai_model",
    "root_model",
]

_DAY = 86_400
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class BaseModel:
    """A base model of the catalog.

    Args:
        id: Model id.
        created: Unix seconds.
        shutdown_in_days: Its shutdown date as days from the world's `today` (negative: passed);
            None when none is announced.
        fine_tunable: Whether jobs can train on it (Azure's `capabilities.fine_tune`).
    """

    id: str
    created: int
    shutdown_in_days: Optional[int]
    fine_tunable: bool = True


# Every model a generated job uses, then two others. The used ones cover a date ahead, a date
# passed and none, so that a load of the default world meets each case.
BASE_CATALOG: Tuple[BaseModel, ...] = (
    BaseModel(BASE_MODELS[0], 1_721_172_741, 44),  # gpt-4o-mini: shuts down soon
    BaseModel(BASE_MODELS[1], 1_744_318_173, None),  # gpt-4.1-mini: nothing announced
    BaseModel(BASE_MODELS[2], 1_722_814_719, -39),  # gpt-4o: shut down already
    BaseModel(REINFORCEMENT_MODEL, 1_744_133_301, None),  # announced later, see below
    BaseModel("gpt-4.1-nano-2025-04-14", 1_744_321_025, None),
    BaseModel("gpt-3.5-turbo-1106", 1_698_959_748, -400, fine_tunable=False),
)
# What the world announces as its clock moves: every job-using world has reinforcement jobs
# (from 6 jobs on), so this date lands on a model that some job trained on.
SCHEDULED_ANNOUNCEMENT = (REINFORCEMENT_MODEL, 75)  # (model, days from today)
ANNOUNCE_AFTER = 1800  # seconds of the virtual clock after construction
OWN_DATE_IN_DAYS = 21  # the one fine-tuned model with a date of its own; no base has it
AZURE_FINE_TUNE_SPAN = 365 * _DAY  # Azure's `deprecation.fine_tune`: a year after creation


class UnknownModelError(KeyError):
    """Raised for a model id that is not listed (never was, or was deleted): the API's 404."""


def root_model(model: str) -> str:
    """The root base model of a model name: the second field of an `ft:` name (which keeps
    the root even when a job trained on an earlier fine-tuned model), else the name itself."""
    if model.startswith("ft:"):
        parts = model.split(":")
        if len(parts) > 1 and parts[1]:
            return parts[1]
    return model


def parse_date(value: str) -> str:
    """`value` if it is a real `YYYY-MM-DD` date.

    Raises:
        ValueError: For anything else (the spec's `format: date`).
    """
    try:
        datetime.date.fromisoformat(value)  # rejects 2025-02-30
    except ValueError:
        valid = False
    else:
        valid = bool(_DATE.match(value))  # and the forms of ISO dates that are not YYYY-MM-DD
    if not valid:
        raise ValueError(f"shutdown date must be a YYYY-MM-DD date, got {value!r}")
    return value


@dataclass
class ModelEntry:
    """One listed model, before it is shaped for OpenAI or Azure.

    Args:
        id: Model id.
        created: Unix seconds.
        owned_by: `system` for base models, else the organization.
        shutdown_date: `YYYY-MM-DD` or None.
        fine_tunable: Azure's `capabilities.fine_tune`.
        base: The model a fine-tuned model was trained from (the job's `model`); None for a
            base model.
        job_id: The job that made it; None for a base model.
    """

    id: str
    created: int
    owned_by: str
    shutdown_date: Optional[str]
    fine_tunable: bool
    base: Optional[str] = None
    job_id: Optional[str] = None


def openai_model(entry: ModelEntry) -> Dict[str, Any]:
    """The entry as `GET /v1/models` serves it (the spec's `Model`)."""
    return {
        "id": entry.id,
        "object": "model",
        "created": entry.created,
        "owned_by": entry.owned_by,
        "shutdown_date": entry.shutdown_date,
    }


def _midnight_utc(date: str) -> int:
    return calendar.timegm(datetime.date.fromisoformat(date).timetuple())


def azure_model(entry: ModelEntry) -> Dict[str, Any]:
    """The entry as Azure OpenAI's `GET /openai/models` serves it: `created_at`, lifecycle,
    capabilities and `deprecation` (Unix seconds; `inference` only when a date is set)."""
    fine_tune_until = entry.created + AZURE_FINE_TUNE_SPAN
    deprecation: Dict[str, int] = {"fine_tune": fine_tune_until}
    if entry.shutdown_date is not None:
        inference = _midnight_utc(entry.shutdown_date)
        # no fine-tuning on a model after it stops serving
        deprecation = {"fine_tune": min(fine_tune_until, inference), "inference": inference}
    model: Dict[str, Any] = {
        "id": entry.id,
        "object": "model",
        "created_at": entry.created,
        "status": "succeeded",
        "lifecycle_status": "generally-available",
        "capabilities": {
            "fine_tune": entry.fine_tunable,
            "inference": True,
            "completion": False,
            "chat_completion": True,
            "embeddings": False,
        },
        "deprecation": deprecation,
    }
    if entry.job_id is not None:
        model["model"] = entry.base
        model["fine_tune"] = entry.job_id
    return model


class ModelCatalog:
    """Which models exist beyond the jobs' own: base models, dates announced, models deleted.

    Not locked: the world calls it under its own lock.

    Args:
        today: The date shutdown dates are relative to.
        announce_at: Virtual-clock second from which the scheduled announcement is visible.
    """

    def __init__(self, today: datetime.date, announce_at: int) -> None:
        self.today = today
        self.deleted: Set[str] = set()
        self.own_date_model: Optional[str] = None  # the fine-tuned model with its own date
        self._announced: Dict[str, Optional[str]] = {}  # model id -> date, by `announce`
        model, days = SCHEDULED_ANNOUNCEMENT
        self._scheduled: List[Tuple[int, str, str]] = [(announce_at, model, self._in(days))]

    def _in(self, days: int) -> str:
        return (self.today + datetime.timedelta(days=days)).isoformat()

    def announce(self, model_id: str, date: Optional[str]) -> None:
        """Sets (or clears, with None) a model's shutdown date; it wins over any other."""
        self._announced[model_id] = None if date is None else parse_date(date)

    def _date(self, model_id: str, default: Optional[str], now: int) -> Optional[str]:
        if model_id in self._announced:
            return self._announced[model_id]
        for at, scheduled, date in self._scheduled:
            if scheduled == model_id and now >= at:
                default = date
        return default

    def entries(self, jobs: Iterable[Any], organization_id: str, now: int) -> List[ModelEntry]:
        """The listed models, in served order: the base catalog, then per job (oldest first)
        its fine-tuned model and its checkpoints (oldest first); deleted ones left out.

        Args:
            jobs: The world's `SandboxJob`s, oldest first.
            organization_id: `owned_by` of fine-tuned models.
            now: The world's clock (which scheduled announcements are visible).
        """
        listed = []
        for base in BASE_CATALOG:
            days = base.shutdown_in_days
            date = self._date(base.id, None if days is None else self._in(days), now)
            listed.append(ModelEntry(base.id, base.created, "system", date, base.fine_tunable))
        for job in jobs:
            record = job.record
            model = record.get("fine_tuned_model")
            if record.get("status") == "succeeded" and isinstance(model, str):
                finished = record.get("finished_at")
                created = finished if isinstance(finished, int) else record["created_at"]
                own = self._in(OWN_DATE_IN_DAYS) if model == self.own_date_model else None
                date = self._date(model, own, now)
                listed.append(
                    ModelEntry(model, created, organization_id, date, True, record["model"], job.id)
                )
            for checkpoint in reversed(job.checkpoints.items()):
                name = checkpoint["fine_tuned_model_checkpoint"]
                date = self._date(name, None, now)
                listed.append(
                    ModelEntry(
                        name,
                        checkpoint["created_at"],
                        organization_id,
                        date,
                        False,
                        record["model"],
                        job.id,
                    )
                )
        return [entry for entry in listed if entry.id not in self.deleted]
