"""How an API object becomes a table row, and the checks an object must pass to become one.

Unix-second fields become timezone-aware datetimes (so the columns are TIMESTAMP WITH TIME
ZONE without relying on coercion) after a range check: milliseconds where seconds belong
end the run naming the item and field, instead of loading the year 57000.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .errors import UpstreamError
from .settings import (
    FILE_TIMESTAMP_FIELDS,
    JOB_TIMESTAMP_FIELDS,
    MAX_UNIX_SECONDS,
    MIN_UNIX_SECONDS,
    RESULTS_GRACE_SECONDS,
    TERMINAL_STATUSES,
)

# Keys of a metrics event's `data` that would collide with the row's own columns, and the two
# that are whole numbers.
_STEP_ROW_KEYS = ("id", "fine_tuning_job_id", "created_at")
_STEP_INTEGERS = ("step", "total_steps")
_STEP_KEYS = frozenset(_STEP_ROW_KEYS + _STEP_INTEGERS)


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


def _flat_item(item: Dict[str, Any], skip: str = "") -> Dict[str, Any]:
    """A list item as a flat row: nested objects flattened (`metrics__train_loss`, their
    numbers as floats), other values as sent (lists become JSON text in `columnar`)."""
    row: Dict[str, Any] = {}
    lists: Dict[str, Any] = {}
    for key, value in item.items():
        if key == skip:
            continue
        if type(value) is dict:
            flatten_into(row, value, key + "__", lists)
        else:
            row[key] = value
    row.update(lists)
    return row


def checkpoint_row(checkpoint: Dict[str, Any], job_id: str) -> Dict[str, Any]:
    """The `checkpoints` row: `metrics` flattened, every metric a float (so a metric first
    seen as an integer still makes a DOUBLE column); `created_at` in Unix seconds, checked by
    `require_item`."""
    row = _flat_item(checkpoint)
    row.setdefault("fine_tuning_job_id", job_id)
    return row


def event_row(event: Dict[str, Any], job_id: str) -> Dict[str, Any]:
    """The `events` row: the event as sent (its `data` whole, as JSON), with its job id."""
    row = {key: value for key, value in event.items() if key != "object"}
    row["fine_tuning_job_id"] = job_id
    return row


def step_metrics_row(
    event: Dict[str, Any], job_id: str
) -> Optional[Tuple[Dict[str, Any], Dict[str, List[Any]]]]:
    """(the `step_metrics` row, the lists inside `data` by flattened name) of a `metrics`
    event, or None when its `data` cannot make one (not an object, or a `step` /
    `total_steps` that is not a whole number).

    Numeric leaves become floats; nested objects are flattened (`scores__train_reward_mean`).
    The event's `created_at` was checked by `require_item`.
    """
    data = event.get("data")
    if not isinstance(data, dict):
        return None
    row: Dict[str, Any] = {
        "id": event["id"],
        "fine_tuning_job_id": job_id,
        "created_at": event["created_at"],
    }
    lists: Dict[str, List[Any]] = {}
    for key in _STEP_INTEGERS:
        value = data.get(key)
        if value is None:
            continue
        if not _is_number(value) or not float(value).is_integer():
            return None
        row[key] = int(value)
    flatten_into(row, {k: v for k, v in data.items() if k not in _STEP_KEYS}, "", lists)
    return row, lists


def grader_rows(step_row: Dict[str, Any], graders: List[Any]) -> Optional[List[Dict[str, Any]]]:
    """The `step_grader_scores` rows of a step's per-grader list (`position` its place in the
    list), or None when an entry is not an object (the list then stays JSON in the step's
    row)."""
    if not all(type(grader) is dict for grader in graders):
        return None
    rows = []
    for position, grader in enumerate(graders):
        row: Dict[str, Any] = {
            "id": step_row["id"],
            "position": position,
            "fine_tuning_job_id": step_row["fine_tuning_job_id"],
            "step": step_row.get("step"),
        }
        lists: Dict[str, Any] = {}
        flatten_into(row, {k: v for k, v in grader.items() if k not in row}, "", lists)
        row.update(lists)
        rows.append(row)
    return rows


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


def flatten_into(
    row: Dict[str, Any], value: Mapping[str, Any], prefix: str, lists: Dict[str, Any]
) -> None:
    """Adds `value`'s entries to `row`, nested objects joined with `__` (as dlt names the
    columns of nested objects) and every number as a float; None values are left out (a
    column that only ever held null is not created, as dlt does with dicts). Lists go to
    `lists` under their flattened name."""
    for key, inner in value.items():
        name = prefix + key
        if inner is None:
            continue
        kind = type(inner)
        if kind is float:
            row[name] = inner
        elif kind is int:
            row[name] = float(inner)
        elif kind is dict:
            flatten_into(row, inner, name + "__", lists)
        elif kind is list:
            lists[name] = inner
        else:  # text, booleans
            row[name] = inner
