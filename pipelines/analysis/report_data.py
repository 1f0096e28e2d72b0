"""What the training report shows, read from the views through dlt's SQL client."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Dict, List, Optional, Sequence

import dlt

from sources.openai_fine_tuning.errors import ConfigurationError

CURVE_COLUMNS = (
    "step",
    "train_loss",
    "valid_loss",
    "full_valid_loss",
    "train_mean_token_accuracy",
    "valid_mean_token_accuracy",
    "full_valid_mean_token_accuracy",
    "train_reward_mean",
    "valid_reward_mean",
)
LIFECYCLE_COLUMNS = (
    "model",
    "kind",
    "fine_tuning_job_id",
    "base_model",
    "root_model",
    "shutdown_date",
    "date_from",
    "days_left",
    "state",
    "training_data_archived",
)


@dataclass
class JobCurves:
    """One job's chart data: its curves, its checkpoints, the best one."""

    summary: Dict[str, Any]
    curves: Dict[str, List[Optional[float]]] = field(default_factory=dict)
    checkpoints: List[Dict[str, Any]] = field(default_factory=list)

    @property
    def id(self) -> str:
        return str(self.summary["id"])

    @property
    def has_steps(self) -> bool:
        return bool(self.curves.get("step"))


@dataclass
class ReportData:
    """Everything one report shows."""

    jobs: List[Dict[str, Any]]  # job_summary rows, newest first
    charted: List[JobCurves]  # the jobs that get charts, newest first
    hyperparameters: Dict[str, Dict[str, Any]]  # job id -> learning rate multiplier, epochs
    # model_lifecycle rows (every fine-tuned model, whatever --since), soonest date first;
    # None when the dataset was loaded before that view existed
    lifecycle: Optional[List[Dict[str, Any]]] = None


def _rows_or_none(client: Any, sql: str, *params: Any) -> Optional[List[Dict[str, Any]]]:
    """The rows as dicts; None when the table or view does not exist."""
    from dlt.destinations.exceptions import DatabaseUndefinedRelation

    try:
        with client.execute_query(sql, *params) as cursor:
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    except DatabaseUndefinedRelation:
        return None


def _rows(client: Any, sql: str, *params: Any) -> List[Dict[str, Any]]:
    """The rows as dicts; none when the table was never loaded (its resource not selected)."""
    return _rows_or_none(client, sql, *params) or []


def _lifecycle(client: Any) -> Optional[List[Dict[str, Any]]]:
    """Every row of `model_lifecycle`, by date (none last), job, kind, model; None without
    the view. `shutdown_date` as a date, `days_left` as an int, whatever the engine."""
    view = client.make_qualified_table_name("model_lifecycle")
    rows = _rows_or_none(
        client,
        f"SELECT {', '.join(LIFECYCLE_COLUMNS)} FROM {view}"
        " ORDER BY shutdown_date NULLS LAST, fine_tuning_job_id, kind DESC, model",
    )
    for row in rows or ():
        when = row["shutdown_date"]
        if isinstance(when, datetime):
            row["shutdown_date"] = when.date()
        if row["days_left"] is not None:
            row["days_left"] = int(row["days_left"])
        row["training_data_archived"] = bool(row["training_data_archived"])
    return rows


def _as_datetime(value: Any) -> Optional[datetime]:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    return None


def _number(value: Any) -> Optional[float]:
    try:
        return None if value is None or isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        return None


def _hyperparameters(raw: Any) -> Dict[str, Any]:
    """Learning-rate multiplier and epochs from the job's JSON (numbers, or "auto")."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raw = None
    raw = raw if isinstance(raw, dict) else {}
    return {
        "learning_rate_multiplier": _number(raw.get("learning_rate_multiplier")),
        "n_epochs": _number(raw.get("n_epochs")),
    }


def read_report_data(
    pipeline: dlt.Pipeline,
    job_ids: Sequence[str] = (),
    since: Optional[date] = None,
    charts: int = 20,
) -> ReportData:
    """The report's data: every job (created on or after `since`) in the table, charts for the
    `charts` most recent jobs that have steps and for every job in `job_ids`."""
    with pipeline.sql_client() as client:
        summary = _rows(client, f"SELECT * FROM {client.make_qualified_table_name('job_summary')}")
        jobs_table = client.make_qualified_table_name("jobs")
        hyper = {
            row["id"]: _hyperparameters(row["hyperparameters"])
            for row in _rows(client, f"SELECT id, hyperparameters FROM {jobs_table}")
        }
        if since is not None:
            start = datetime(since.year, since.month, since.day)
            summary = [
                row
                for row in summary
                if (created := _as_datetime(row["created_at"])) is not None
                and created.replace(tzinfo=None) >= start
            ]
        summary.sort(key=lambda row: (str(row["created_at"]), row["id"]), reverse=True)
        wanted = [row for row in summary if row["steps"] is not None][:charts]
        chosen = {row["id"] for row in wanted} | set(job_ids)
        by_id = {row["id"]: row for row in summary}
        unknown = [i for i in job_ids if i not in by_id]
        if unknown:
            raise ConfigurationError(
                f"Job {unknown[0]!r} is not in the dataset"
                + (f" (created on or after {since})" if since else "")
                + ": check --job, or load it first"
            )
        charted = [JobCurves(by_id[i]) for i in [r["id"] for r in summary] if i in chosen]
        if charted:
            _fill_curves(client, charted)
        lifecycle = _lifecycle(client)  # last: a missing view fails no query after it
    return ReportData(summary, charted, hyper, lifecycle)


def _fill_curves(client: Any, charted: List[JobCurves]) -> None:
    ids = [job.id for job in charted]
    marks = ", ".join(["%s"] * len(ids))
    curves = client.make_qualified_table_name("training_curves")
    rows = _rows(
        client,
        f"SELECT fine_tuning_job_id, {', '.join(CURVE_COLUMNS)} FROM {curves}"
        f" WHERE fine_tuning_job_id IN ({marks}) ORDER BY fine_tuning_job_id, step",
        *ids,
    )
    checkpoints = client.make_qualified_table_name("checkpoints")
    points = _rows(
        client,
        f"SELECT id, fine_tuning_job_id, step_number FROM {checkpoints}"
        f" WHERE fine_tuning_job_id IN ({marks}) ORDER BY step_number",
        *ids,
    )
    by_id = {job.id: job for job in charted}
    for row in rows:
        job = by_id[row["fine_tuning_job_id"]]
        for column in CURVE_COLUMNS:
            value = row[column]
            job.curves.setdefault(column, []).append(
                int(value) if column == "step" else _number(value)
            )
    for point in points:
        by_id[point["fine_tuning_job_id"]].checkpoints.append(point)
