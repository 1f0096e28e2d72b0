"""The dlt source of OpenAI fine-tuning history: jobs, checkpoints, events and per-step metrics,
files, results CSVs and training data, loaded incrementally per job and per resource; and the
organization's models with their shutdown dates.

Example:
    >>> import dlt
    >>> from sources.openai_fine_tuning import openai_fine_tuning
    >>> pipeline = dlt.pipeline("openai_fine_tuning", destination="duckdb",
    ...                         dataset_name="openai_fine_tuning")
    >>> pipeline.run(openai_fine_tuning())

Longer than the other modules on purpose: the source function is dlt's configuration surface
(one argument per option, documented) and declares every resource in one place; what each
resource reads lives in its own module.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    ContextManager,
    Dict,
    FrozenSet,
    Iterable,
    Iterator,
    List,
    Optional,
    Sequence,
)

import dlt
from dlt.common.schema.typing import TTableSchemaColumns, TWriteDispositionConfig
from dlt.extract.exceptions import CurrentSourceNotAvailable
from dlt.extract.items import DataItemWithMeta
from dlt.extract.resource import DltResource
from dlt.extract.source import DltSource

from .batching import ArrowBatcher, Batch
from .connection import resolve_connection, setting
from .http.client import FineTuningApi, redact_url
from .job_lists import JOB_LISTS, JobList, iter_new_items, register_table
from .job_slots import JobSlots
from .ledger import LEDGER_KEY, JobLedger, StateOwner, job_counts
from .listing import ListingAhead, iter_configured_jobs, iter_listed_jobs
from .options import ApiOptions, SourceSettings, clean_job_ids, clean_resources
from .org_lists import ORG_LISTS
from .rows import is_final, job_row
from .schema import (
    FILE_COLUMNS,
    JOB_COLUMNS,
    MERGED,
    MERGED_ONCE_PER_RUN,
    RESULT_ROW_COLUMNS,
    TRAINING_EXAMPLE_COLUMNS,
)
from .settings import (
    ARROW_BATCH_ROWS,
    DEFAULT_BACKOFF_BASE,
    DEFAULT_BACKOFF_MAX,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_PAGE_SIZE,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_WORKERS,
    ENV_ORGANIZATION,
    ENV_PROJECT,
    JOBS_PATH,
    PER_JOB_RESOURCES,
)
from .stats import RunStats

if TYPE_CHECKING:  # imported on first use: the source imports without pyarrow (DESIGN.md)
    import pyarrow as pa

# the resources whose rows go to dlt as Arrow tables (`columnar`)
ARROW_RESOURCES = ("checkpoints", "events", "results", "training_data", "models")
# dlt gives rows it gets as Arrow tables (`training_examples`) no `_dlt_load_id` unless told:
# every table then says which load wrote a row, as the others do (and a run's rows can be
# counted in the destination). Set here, unless configured, so `pipeline.run()` gets it too.
ARROW_LOAD_ID_KEY = "normalize.parquet_normalizer.add_dlt_load_id"


def _arrow_rows_carry_their_load_id() -> None:
    if dlt.config.get(ARROW_LOAD_ID_KEY) is None:
        dlt.config[ARROW_LOAD_ID_KEY] = True


def ledger_counts(pipeline_state: Any) -> tuple[Optional[int], Optional[int]]:
    """(jobs some resource still reads next run, jobs settled for every resource), from a dlt
    pipeline's state; (None, None) before the first run."""
    sources = pipeline_state.get("sources") if isinstance(pipeline_state, dict) else None
    source = (sources or {}).get("openai_fine_tuning")
    ledger = source.get(LEDGER_KEY) if isinstance(source, dict) else None
    return job_counts(ledger) if isinstance(ledger, dict) else (None, None)


@dataclass(frozen=True)
class JobTask:
    """A job to read on this run, with the ledger that records what was loaded of it.

    `job` is None for the two markers around the jobs: the first (`last` false) creates the
    tables of a resource on its first run, even when the organization has no jobs (or no such
    rows) yet; the last (`last` true) says no job follows, so the rows gathered for the last
    batch go out (`batching`).
    """

    job: Optional[Dict[str, Any]]
    ledger: JobLedger
    selected: FrozenSet[str] = frozenset(PER_JOB_RESOURCES)  # the per-job resources running
    last: bool = False


def _prepare_extraction() -> List[str]:
    """The per-job resources this extraction loads (a job is read only if one of them needs
    it), after giving resources the hints of the other tables they fill.

    The hints go on the resources of the source being extracted, before any item: dlt's
    resource clones (the source makes some) do not carry table variants.
    """
    from .columnar import keep_json_hints_quietly

    keep_json_hints_quietly(ARROW_RESOURCES)
    try:
        source = dlt.current.source()
    except CurrentSourceNotAvailable:  # a resource run on its own: assume every one
        return list(PER_JOB_RESOURCES)
    for spec in JOB_LISTS:
        if spec.name in source.resources:
            for table in spec.derived:
                table.register(source.resources[spec.name])
    if "training_data" in source.resources:  # it writes the rows of the files it archives
        register_table(source.resources["training_data"], "files", FILE_COLUMNS, "id")
    return [name for name in PER_JOB_RESOURCES if name in source.selected_resources]


def _count_rows(stats: RunStats, resource: str, item: Any) -> None:
    """Rows of a yielded item, per table (for the progress line)."""
    import pyarrow as pa

    table, data = resource, item
    if isinstance(item, DataItemWithMeta):
        table, data = getattr(item.meta, "table_name", resource), item.data
    stats.count_rows(table, len(data) if isinstance(data, (list, pa.Table)) else 1)


def _arrow_part(item: Any, own_table: str) -> tuple[str, Optional[pa.Table]]:
    """(table name, Arrow table) of a yielded item; the table is None for dict rows."""
    import pyarrow as pa

    if isinstance(item, DataItemWithMeta) and isinstance(item.data, pa.Table):
        return getattr(item.meta, "table_name", own_table), item.data
    return own_table, item if isinstance(item, pa.Table) else None


def _for_dlt(batches: List[Batch], own_table: str) -> Iterator[Any]:
    from .columnar import with_load_id_slot

    for table_name, table in batches:
        table = with_load_id_slot(table)
        yield table if table_name == own_table else dlt.mark.with_table_name(table, table_name)


def _marker_for_dlt(item: Any, own_table: str) -> Iterator[Any]:
    """A table marker as dlt gets it: an Arrow one as a batch of no rows."""
    table, rows = _arrow_part(item, own_table)
    if rows is None:
        yield item
    else:
        yield from _for_dlt([(table, rows)], own_table)


_DONE = object()  # what `next()` gives for a job's items that ended


def _per_job(
    name: str,
    tasks: DltResource,
    stats: RunStats,
    read: Callable[[JobTask], Iterable[Any]],
    columns: TTableSchemaColumns,
    batcher: ArrowBatcher,
    primary_key: Sequence[str] = ("id",),
    markers: Callable[[], Iterable[Any]] = lambda: [dlt.mark.materialize_table_schema()],
    parallelized: bool = True,
    table_name: Optional[str] = None,
    write_disposition: TWriteDispositionConfig = MERGED,
    slots: Optional[JobSlots] = None,
) -> DltResource:
    """A merged transformer over the jobs to read that skips jobs settled for it.

    With `parallelized`, each job's generator runs in dlt's extract thread pool, one step at
    a time, so one job's pages stay in order while jobs overlap; each step takes one of
    `slots` (`job_slots`: fewer steps at once while the CPU is the bottleneck). Arrow tables
    go to dlt in batches gathered across jobs (`batching`); rows of the resource's own table
    get their `_dlt_id` from `primary_key`. `write_disposition` is its own table's
    (`schema.MERGED`, or `schema.MERGED_ONCE_PER_RUN` when a run yields each of its rows at
    most once).
    """
    own_table = table_name or name
    step: ContextManager[Any] = slots if slots is not None else nullcontext()

    def per_job(task: JobTask) -> Iterator[Any]:
        from .columnar import with_row_ids

        if task.job is None:
            if task.last:
                yield from _for_dlt(batcher.listing_done(), own_table)
            elif not task.ledger.is_started(name):
                for marker in markers():
                    yield from _marker_for_dlt(marker, own_table)
                task.ledger.mark_started(name)
            return
        if not task.ledger.is_settled(task.job["id"], name):
            items = iter(read(task))
            while True:
                with step:  # one step: an item read and batched, not its way to dlt
                    item = next(items, _DONE)
                    if item is _DONE:
                        break
                    _count_rows(stats, name, item)
                    table, rows = _arrow_part(item, own_table)
                    if rows is None:
                        ready = [item]
                    else:
                        if table == own_table:
                            rows = with_row_ids(rows, primary_key)
                        ready = list(_for_dlt(batcher.add(table, rows), own_table))
                yield from ready
        stats.count_job_done(name)
        yield from _for_dlt(batcher.job_done(), own_table)

    return dlt.transformer(
        per_job,
        data_from=tasks,
        name=name,
        table_name=own_table,
        write_disposition=write_disposition,
        primary_key=list(primary_key),
        columns=columns,
        parallelized=parallelized,
    )


# the section is the package's (config `sources.openai_fine_tuning.<key>`, the source state's
# key), as when this module was the package itself
@dlt.source(name="openai_fine_tuning", section="openai_fine_tuning")
def openai_fine_tuning(
    api_key: Optional[str] = dlt.secrets.value,
    base_url: Optional[str] = dlt.config.value,
    api_type: Optional[str] = dlt.config.value,
    api_version: Optional[str] = dlt.config.value,
    azure_ad_token: Optional[str] = dlt.secrets.value,
    organization: Optional[str] = dlt.config.value,
    project: Optional[str] = dlt.config.value,
    job_ids: Optional[List[str]] = dlt.config.value,
    resources: Optional[List[str]] = dlt.config.value,
    page_size: int = DEFAULT_PAGE_SIZE,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    backoff_base: float = DEFAULT_BACKOFF_BASE,
    backoff_max: float = DEFAULT_BACKOFF_MAX,
    workers: int = DEFAULT_WORKERS,
    max_requests_per_second: Optional[float] = None,
    stats: Optional[RunStats] = None,
    state_owner: Optional[StateOwner] = None,
    settings: Optional[SourceSettings] = None,
) -> Sequence[DltResource]:
    """The fine-tuning history of one OpenAI organization (or compatible server).

    Args:
        api_key: API key; falls back to `OPENAI_API_KEY` (Azure: `AZURE_OPENAI_API_KEY`,
            sent as the `api-key` header).
        base_url: API root, default `https://api.openai.com/v1`; falls back to
            `OPENAI_BASE_URL`. Azure: the resource endpoint (`AZURE_OPENAI_ENDPOINT`),
            `https://<resource>.openai.azure.com`; `/openai/v1` is added (`/openai` with an
            `api_version`) unless it has a path.
        api_type: `openai` (default) or `azure` (Azure OpenAI / Microsoft Foundry).
        api_version: Azure's dated API version, sent as `api-version`; falls back to
            `OPENAI_API_VERSION`. Not needed for `/openai/v1`.
        azure_ad_token: Azure: a Microsoft Entra ID token, sent as a bearer token instead of
            the key; falls back to `AZURE_OPENAI_AD_TOKEN`.
        organization: `OpenAI-Organization` header; falls back to `OPENAI_ORG_ID`.
        project: `OpenAI-Project` header; falls back to `OPENAI_PROJECT_ID`.
        job_ids: Only these jobs (each fetched by id); all jobs when empty.
        resources: The resources selected (all by default): `jobs`, `checkpoints`, `events`
            (with `step_metrics`), `files`, `results`, `training_data` (`training_examples`
            and the content columns of `files`), `models`; `with_resources()` overrides it.
        page_size: Items per list request, 1..100.
        max_attempts: Attempts per request, retries included.
        request_timeout: Seconds to wait for each response.
        backoff_base: Seconds before the first retry; doubles per retry, minus jitter.
        backoff_max: Cap of the wait between retries.
        workers: Most requests in flight at once; the per-job resources of different jobs are
            read in parallel by dlt's extract workers (give `pipeline.extract` / `[extract]
            workers` at least as many). Halved after a 429, grown back as requests succeed.
        max_requests_per_second: Optional cap of request starts per second.
        stats: Counts requests, jobs and skipped items of the run, for a summary.
        state_owner: The target the state must belong to (a state recorded for another
            target is refused); unchecked when None.
        settings: Filled with what the source resolved (workers, API identity); `build()`
            returns it.

    Returns:
        The resources `jobs`, `checkpoints`, `events`, `files`, `results`, `training_data`
        and `models`, each merged.
    """
    _arrow_rows_carry_their_load_id()
    connection = resolve_connection(api_type, api_key, base_url, api_version, azure_ad_token)
    options = ApiOptions(
        api_key=connection.credential,
        base_url=connection.base_url,
        auth_scheme=connection.auth_scheme,
        api_version=connection.api_version,
        organization=setting(organization, ENV_ORGANIZATION),
        project=setting(project, ENV_PROJECT),
        page_size=page_size,
        max_attempts=max_attempts,
        request_timeout=request_timeout,
        backoff_base=backoff_base,
        backoff_max=backoff_max,
        workers=workers,
        max_requests_per_second=max_requests_per_second,
    )
    api = FineTuningApi(options, stats)
    wanted = clean_job_ids(job_ids)
    # configured job ids are fetched by id: no job list to read ahead
    listing_ahead = None if wanted else ListingAhead(api)
    slots = JobSlots(options.workers)
    if settings is not None:
        settings.listing_ahead = listing_ahead
        settings.job_slots = slots
        settings.workers = options.workers
        settings.api_identity = {
            "base_url": redact_url(options.base_url).rstrip("/"),
            "organization": options.organization,
            "project": options.project,
        }
    chosen = clean_resources(resources)
    batchers = {name: ArrowBatcher(ARROW_BATCH_ROWS) for name in PER_JOB_RESOURCES}

    @dlt.resource(name="jobs_to_read", selected=False)
    def jobs_to_read() -> Iterator[JobTask]:
        selected = _prepare_extraction()
        state = dlt.current.source_state().setdefault(LEDGER_KEY, {})
        if state_owner is not None:
            state_owner.claim(state)
        ledger = JobLedger(state, PER_JOB_RESOURCES)
        running = frozenset(selected)
        batching = [batchers[name] for name in running]
        for batcher in batching:
            batcher.reset()
        yield JobTask(None, ledger, running)
        listing = (
            iter_configured_jobs(api, ledger, wanted, selected)
            if wanted
            else iter_listed_jobs(api, ledger, selected, listing_ahead)
        )
        for job in listing:
            api.stats.count_job()
            for batcher in batching:  # before the task reaches a reader
                batcher.expect()
            yield JobTask(job, ledger, running)
        yield JobTask(None, ledger, running, last=True)

    def read_job(task: JobTask) -> Iterator[Dict[str, Any]]:
        """A job's row when it changed; a terminal job is then settled for `jobs`."""
        job, ledger = task.job, task.ledger
        if ledger.job_changed(job):
            yield job_row(job, api.endpoint(JOBS_PATH))
        if is_final(job):
            ledger.settle(job["id"], "jobs")

    def job_list(spec: JobList) -> DltResource:
        def read_list(task: JobTask) -> Iterator[Any]:
            job_id = task.job["id"]
            endpoint = api.endpoint(f"{JOBS_PATH}/{job_id}/{spec.path}")
            for items in iter_new_items(api, task.ledger, task.job, spec):
                yield from spec.dlt_items(items, job_id, endpoint, api.stats)

        return _per_job(
            spec.name,
            jobs_to_read,
            api.stats,
            read_list,
            spec.columns,
            batchers[spec.name],
            markers=spec.table_markers,
            write_disposition=MERGED_ONCE_PER_RUN,  # a job's list is read once per run
            slots=slots,
        )

    def read_training_data(task: JobTask) -> Iterator[Any]:
        from .training_data import iter_training_items

        for item in iter_training_items(api, task.ledger, task.job):
            if item.table == "files":
                yield dlt.mark.with_table_name(item.rows, "files")
            else:
                yield item.rows

    def read_files(task: JobTask) -> Iterator[Any]:
        from .job_files import iter_file_rows

        return iter_file_rows(api, task.ledger, task.job, "training_data" in task.selected)

    def read_results(task: JobTask) -> Iterator[Any]:
        from .job_files import iter_result_rows

        return iter_result_rows(api, task.ledger, task.job)

    def training_data_markers() -> List[Any]:
        from .columnar import with_row_ids
        from .training_data import SCHEMA

        return [
            with_row_ids(SCHEMA.empty_table(), ("file_id", "line")),
            dlt.mark.with_table_name(dlt.mark.materialize_table_schema(), "files"),
        ]

    all_resources = [
        # the job row is cheap and needs no request: no thread pool for it
        _per_job(
            "jobs",
            jobs_to_read,
            api.stats,
            read_job,
            JOB_COLUMNS,
            batchers["jobs"],
            parallelized=False,
        ),
        *(job_list(spec) for spec in JOB_LISTS),
        _per_job(
            "files",
            jobs_to_read,
            api.stats,
            read_files,
            FILE_COLUMNS,
            batchers["files"],
            slots=slots,
        ),
        _per_job(
            "results",
            jobs_to_read,
            api.stats,
            read_results,
            RESULT_ROW_COLUMNS,
            batchers["results"],
            primary_key=("file_id", "step"),
            write_disposition=MERGED_ONCE_PER_RUN,  # a results file is read once, ever
            slots=slots,
        ),
        _per_job(
            "training_data",
            jobs_to_read,
            api.stats,
            read_training_data,
            TRAINING_EXAMPLE_COLUMNS,
            batchers["training_data"],
            primary_key=("file_id", "line"),
            table_name="training_examples",
            write_disposition=MERGED_ONCE_PER_RUN,  # a file is claimed once per run
            markers=training_data_markers,
            slots=slots,
        ),
        *(spec.resource(api) for spec in ORG_LISTS),
    ]
    for resource in all_resources:
        resource.selected = resource.name in chosen
    return all_resources


def build(
    stats: Optional[RunStats] = None, state_owner: Optional[StateOwner] = None, **options: Any
) -> tuple[DltSource, SourceSettings]:
    """The source, and what it resolved (workers, API identity) for its caller.

    Args:
        stats: Counters the run updates.
        state_owner: The target the state must belong to; filled in by the caller once it
            knows the API identity (before extraction starts).
        **options: `openai_fine_tuning()`'s arguments; the rest comes from dlt config.
    """
    settings = SourceSettings()
    source = openai_fine_tuning(stats=stats, state_owner=state_owner, settings=settings, **options)
    return source, settings
