"""A dlt source of OpenAI fine-tuning jobs and their checkpoints, loaded incrementally per job.

Example:
    >>> import dlt
    >>> from sources.openai_fine_tuning import openai_fine_tuning
    >>> pipeline = dlt.pipeline("openai_fine_tuning", destination="duckdb",
    ...                         dataset_name="openai_fine_tuning")
    >>> pipeline.run(openai_fine_tuning())
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Sequence

import dlt
from dlt.common.schema.typing import TTableSchemaColumns
from dlt.extract.resource import DltResource

from .client import FineTuningApi, redact_url
from .errors import ConfigurationError
from .ledger import JobLedger
from .options import clean_job_ids
from .readers import iter_configured_jobs, iter_listed_jobs, iter_new_checkpoints, job_row
from .settings import (
    CHECKPOINT_METRICS,
    DEFAULT_BACKOFF_BASE,
    DEFAULT_BACKOFF_MAX,
    DEFAULT_BASE_URL,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_PAGE_SIZE,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_WORKERS,
    ENV_API_KEY,
    ENV_BASE_URL,
    ENV_ORGANIZATION,
    ENV_PROJECT,
    JOB_JSON_FIELDS,
    JOB_TEXT_FIELDS,
    JOB_TIMESTAMP_FIELDS,
)
from .stats import RunStats

__all__ = ["openai_fine_tuning", "FineTuningApi", "RunStats", "redact_url"]

LEDGER_KEY = "jobs_ledger"


def _column(data_type: str, nullable: bool = True, **hints: Any) -> Dict[str, Any]:
    # a new dict per column: dlt writes the column name into it
    return {"data_type": data_type, "nullable": nullable, **hints}


CHECKPOINT_COLUMNS: TTableSchemaColumns = {
    "id": _column("text", nullable=False, primary_key=True),
    "created_at": _column("timestamp", nullable=False, timezone=True),
    "fine_tuned_model_checkpoint": _column("text"),
    "fine_tuning_job_id": _column("text"),
    "step_number": _column("bigint"),
    "object": _column("text"),
    **{f"metrics__{name}": _column("double") for name in CHECKPOINT_METRICS},
}  # type: ignore[dict-item]

JOB_COLUMNS: TTableSchemaColumns = {
    "id": _column("text", nullable=False, primary_key=True),
    **{name: _column("timestamp", timezone=True) for name in JOB_TIMESTAMP_FIELDS},
    **{name: _column("json") for name in JOB_JSON_FIELDS},
    **{name: _column("text") for name in JOB_TEXT_FIELDS},
    "trained_tokens": _column("bigint"),
    "seed": _column("bigint"),
}  # type: ignore[dict-item]


@dataclass(frozen=True)
class JobTask:
    """A job to read on this run, with the ledger that records what was loaded of it.

    `job` is None for the marker sent after the listing of a first run: it makes both tables
    exist even when the organization has no jobs or no checkpoints yet.
    """

    job: Optional[Dict[str, Any]]
    ledger: JobLedger


def _setting(value: Optional[str], env_var: str) -> Optional[str]:
    """The dlt config value, else the OpenAI SDK's environment variable; blank counts as unset."""
    value = value or os.environ.get(env_var)
    return value.strip() if value and value.strip() else None


@dlt.source(name="openai_fine_tuning")
def openai_fine_tuning(
    api_key: Optional[str] = dlt.secrets.value,
    base_url: Optional[str] = dlt.config.value,
    organization: Optional[str] = dlt.config.value,
    project: Optional[str] = dlt.config.value,
    job_ids: Optional[List[str]] = dlt.config.value,
    page_size: int = DEFAULT_PAGE_SIZE,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    backoff_base: float = DEFAULT_BACKOFF_BASE,
    backoff_max: float = DEFAULT_BACKOFF_MAX,
    workers: int = DEFAULT_WORKERS,
    max_requests_per_second: Optional[float] = None,
    stats: Optional[RunStats] = None,
) -> Sequence[DltResource]:
    """Fine-tuning jobs and their checkpoints of one OpenAI organization (or compatible server).

    Args:
        api_key: API key; falls back to `OPENAI_API_KEY`.
        base_url: API root, default `https://api.openai.com/v1`; falls back to `OPENAI_BASE_URL`.
        organization: `OpenAI-Organization` header; falls back to `OPENAI_ORG_ID`.
        project: `OpenAI-Project` header; falls back to `OPENAI_PROJECT_ID`.
        job_ids: Only these jobs (each fetched by id); all jobs when empty.
        page_size: Items per list request, 1..100.
        max_attempts: Attempts per request, retries included.
        request_timeout: Seconds to wait for each response.
        backoff_base: Seconds before the first retry; doubles per retry, minus jitter.
        backoff_max: Cap of the wait between retries.
        workers: Most requests in flight at once; checkpoints of different jobs are read in
            parallel by dlt's extract workers (give `pipeline.extract` / `[extract] workers`
            at least as many). Halved after a 429, grown back as requests succeed.
        max_requests_per_second: Optional cap of request starts per second.
        stats: Counts requests and jobs of the run, for a summary.

    Returns:
        The `jobs` and `checkpoints` resources, both merged on `id`.
    """
    key = _setting(api_key, ENV_API_KEY)
    if key is None:
        raise ConfigurationError(
            "No OpenAI API key: set sources.openai_fine_tuning.api_key in .dlt/secrets.toml"
            f" or the {ENV_API_KEY} environment variable"
        )
    wanted = clean_job_ids(job_ids)
    api = FineTuningApi(
        api_key=key,
        base_url=_setting(base_url, ENV_BASE_URL) or DEFAULT_BASE_URL,
        organization=_setting(organization, ENV_ORGANIZATION),
        project=_setting(project, ENV_PROJECT),
        page_size=page_size,
        max_attempts=max_attempts,
        request_timeout=request_timeout,
        backoff_base=backoff_base,
        backoff_max=backoff_max,
        workers=workers,
        max_requests_per_second=max_requests_per_second,
        stats=stats,
    )
    api.stats.workers = workers

    @dlt.resource(name="jobs_to_read", selected=False)
    def jobs_to_read() -> Iterator[JobTask]:
        ledger = JobLedger(dlt.current.source_state().setdefault(LEDGER_KEY, {}))
        first_run = ledger.is_empty()
        listing = (
            iter_configured_jobs(api, ledger, wanted) if wanted else iter_listed_jobs(api, ledger)
        )
        for job in listing:
            api.stats.count_job()
            yield JobTask(job, ledger)
        if first_run:
            yield JobTask(None, ledger)

    @dlt.transformer(
        data_from=jobs_to_read,
        name="jobs",
        write_disposition="merge",
        primary_key="id",
        columns=JOB_COLUMNS,
    )
    def jobs(task: JobTask) -> Iterator[Dict[str, Any]]:
        """Every fine-tuning job; a row is written again only when the job changed."""
        if task.job is None:
            yield dlt.mark.materialize_table_schema()
        elif task.ledger.job_changed(task.job):
            yield job_row(task.job)

    @dlt.transformer(
        data_from=jobs_to_read,
        name="checkpoints",
        parallelized=True,  # each job's pages are read in dlt's extract thread pool
        write_disposition="merge",
        primary_key="id",
        columns=CHECKPOINT_COLUMNS,
    )
    def checkpoints(task: JobTask) -> Iterator[List[Dict[str, Any]]]:
        """Every checkpoint of every job, read incrementally per job."""
        if task.job is None:
            yield dlt.mark.materialize_table_schema()
        else:
            yield from iter_new_checkpoints(api, task.ledger, task.job)

    return jobs, checkpoints
