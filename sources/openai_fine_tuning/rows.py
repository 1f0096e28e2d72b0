"""How an API object becomes a table row, and the checks an object must pass to become one.

Unix-second fields become timezone-aware datetimes (so the columns are TIMESTAMP WITH TIME
ZONE without relying on coercion) after a range check: milliseconds where seconds belong
end the run naming the item and field, instead of loading the year 57000.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from typing import Any, Dict, Optional

from .errors import UpstreamError
from .settings import (
    FILE_TIMESTAMP_FIELDS,
    JOB_TIMESTAMP_FIELDS,
    MAX_UNIX_SECONDS,
    MIN_UNIX_SECONDS,
    RESULTS_GRACE_SECONDS,
    TERMINAL_STATUSES,
)

# Keys of a metrics event's `data` that would collide with the row's own columns.
_STEP_ROW_KEYS = ("id", "fine_tuning_job_id", "created_at")
_STEP_INTEGERS = ("step", "total_steps")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def unix_seconds(value: Any, endpoint: str, kind: str, item_id: str, name: str) -> Optional[int]:
    """The value when it is None or whole Unix seconds within 1970..2100, else `UpstreamError`."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if MIN_UNIX_SECONDS <= value <= MAX_UNIX_SECONDS:
            return value
        hint = " (milliseconds?)" if value > MAX_UNIX_SECONDS else ""
        raise UpstreamError(
            f"{endpoint} answered {kind} {item_id!r} with {name} {value!r}, outside Unix seconds"
            f" of 1970..2100{hint}"
        )
    raise UpstreamError(
        f"{endpoint} answered {kind} {item_id!r} with {name} {value!r}, not whole Unix seconds"
    )


def _utc(value: Any, endpoint: str, kind: str, item_id: str, name: str) -> Optional[datetime]:
    seconds = unix_seconds(value, endpoint, kind, item_id, name)
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=UTC)


def _a(kind: str) -> str:
    return ("an " if kind[0] in "aeiou" else "a ") + kind


def require_item(item: Any, endpoint: str, kind: str) -> Dict[str, Any]:
    """The item if it has a string `id` and a `created_at` in Unix seconds, else a clear error."""
    if not isinstance(item, dict):
        raise UpstreamError(f"{endpoint} answered {_a(kind)} that is not an object: {item!r:.80}")
    if not isinstance(item.get("id"), str) or not item["id"]:
        raise UpstreamError(f"{endpoint} answered {_a(kind)} without an 'id': {item!r:.120}")
    created_at = item.get("created_at")
    if created_at is None or isinstance(created_at, bool) or not isinstance(created_at, int):
        raise UpstreamError(
            f"{endpoint} answered {kind} {item['id']!r} without an integer 'created_at'"
            f" (got {created_at!r})"
        )
    unix_seconds(created_at, endpoint, kind, item["id"], "created_at")
    return item


def as_doubles(value: Any) -> Any:
    """Every number inside `value` as a float, so a metric first seen as an integer still
    creates a DOUBLE column (no `__v_double` variant when a fraction arrives later)."""
    if _is_number(value):
        return float(value)
    if isinstance(value, dict):
        return {key: as_doubles(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [as_doubles(inner) for inner in value]
    return value


def is_final(job: Dict[str, Any], now: Optional[float] = None) -> bool:
    """True when the job's record will not change again: it ended, and it lists its results
    files (or ended more than a day ago: failed and cancelled jobs usually get none). Until
    then `jobs`, `files` and `results` read it again, so results attached late still load."""
    if job.get("status") not in TERMINAL_STATUSES:
        return False
    if job.get("result_files"):
        return True
    finished = job.get("finished_at")
    if not isinstance(finished, int) or isinstance(finished, bool):
        return True  # no end time to wait from
    return (time.time() if now is None else now) >= finished + RESULTS_GRACE_SECONDS


def job_row(job: Dict[str, Any], endpoint: str) -> Dict[str, Any]:
    """The `jobs` row: the API object with its Unix-second fields as UTC timestamps."""
    row = dict(job)
    for name in JOB_TIMESTAMP_FIELDS:
        row[name] = _utc(job.get(name), endpoint, "job", job["id"], name)
    return row


def checkpoint_row(checkpoint: Dict[str, Any], job_id: str, endpoint: str) -> Dict[str, Any]:
    """The `checkpoints` row; every numeric metric a float."""
    row = dict(checkpoint)
    row["created_at"] = _utc(
        checkpoint["created_at"], endpoint, "checkpoint", row["id"], "created_at"
    )
    row.setdefault("fine_tuning_job_id", job_id)
    if isinstance(checkpoint.get("metrics"), dict):
        row["metrics"] = as_doubles(checkpoint["metrics"])
    return row


def event_row(event: Dict[str, Any], job_id: str, endpoint: str) -> Dict[str, Any]:
    """The `events` row: the event as sent (its `data` whole, as JSON), with its job id."""
    row = {key: value for key, value in event.items() if key != "object"}
    row["created_at"] = _utc(event["created_at"], endpoint, "event", event["id"], "created_at")
    row["fine_tuning_job_id"] = job_id
    return row


def step_metrics_row(event: Dict[str, Any], job_id: str) -> Optional[Dict[str, Any]]:
    """The `step_metrics` row of a `metrics` event, or None when its `data` cannot make one
    (not an object, or a `step` / `total_steps` that is not a whole number).

    Numeric leaves become floats; nested objects are flattened by dlt (`scores__train_...`)
    and lists become child tables. The event's `created_at` was checked by `event_row`.
    """
    data = event.get("data")
    if not isinstance(data, dict):
        return None
    row: Dict[str, Any] = {
        "id": event["id"],
        "fine_tuning_job_id": job_id,
        "created_at": datetime.fromtimestamp(event["created_at"], tz=UTC),
    }
    for key, value in data.items():
        if key in _STEP_ROW_KEYS:
            continue  # kept in events.data; the row's own columns win
        if key in _STEP_INTEGERS:
            if value is None:
                continue
            if not _is_number(value) or not float(value).is_integer():
                return None
            row[key] = int(value)
        else:
            row[key] = as_doubles(value)
    return row


def file_row(record: Dict[str, Any], endpoint: str) -> Dict[str, Any]:
    """The `files` row: the file's metadata with its Unix-second fields as UTC timestamps."""
    row = {key: value for key, value in record.items() if key != "object"}
    for name in FILE_TIMESTAMP_FIELDS:
        row[name] = _utc(record.get(name), endpoint, "file", record["id"], name)
    return row


def _shutdown_date(value: Any, endpoint: str, model_id: str) -> Optional[date]:
    """`shutdown_date` as a date: `YYYY-MM-DD` (OpenAI) or Unix seconds (Azure's
    `deprecation.inference`), else `UpstreamError` naming the model."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            pass
    elif isinstance(value, int) and not isinstance(value, bool):
        seconds = unix_seconds(value, endpoint, "model", model_id, "deprecation.inference")
        return datetime.fromtimestamp(seconds or 0, tz=UTC).date()
    raise UpstreamError(
        f"{endpoint} answered model {model_id!r} with shutdown date {value!r}, not YYYY-MM-DD"
    )


def model_row(model: Any, endpoint: str, seen_at: datetime) -> Dict[str, Any]:
    """The `models` row of an item of `GET /models`, OpenAI's shape or Azure's.

    OpenAI sends `created` and `shutdown_date`; Azure `created_at` and
    `deprecation.inference` (Unix seconds): both land in `created` and `shutdown_date`. The
    rest is kept as sent; `last_seen_at` is when this run listed it.
    """
    if not isinstance(model, dict) or not isinstance(model.get("id"), str) or not model["id"]:
        raise UpstreamError(f"{endpoint} answered a model without an 'id': {model!r:.80}")
    model_id = model["id"]
    row = {key: value for key, value in model.items() if key != "object"}
    created = model.get("created", model.get("created_at"))
    row.pop("created_at", None)
    row["created"] = _utc(created, endpoint, "model", model_id, "created")
    deprecation = model.get("deprecation")
    shutdown = model.get("shutdown_date")
    if shutdown is None and isinstance(deprecation, dict):
        shutdown = deprecation.get("inference")
    row["shutdown_date"] = _shutdown_date(shutdown, endpoint, model_id)
    row["last_seen_at"] = seen_at
    return row
