"""Dagster assets for the OpenAI fine-tuning source, through `dagster-dlt`.

Install with `pip install "dlt-openai-fine-tuning[dagster]"`, then in your code location:

    # definitions.py
    from pipelines.integrations.dagster_assets import make_definitions

    defs = make_definitions(duckdb_path="/data/openai_ft.duckdb")

Each resource (`jobs`, `checkpoints`, `events`, `files`, `results`, `training_data`, `models`)
is one asset,
keyed `dlt_openai_fine_tuning_<resource>` as dagster-dlt names them; `events` also fills
`step_metrics` (and its child tables). The hidden `jobs_to_read` resource they all read from
is not an asset. The assets form one multi-asset: one dlt run, one state, whatever subset
is materialized.

What differs from `openai-ft load` (docs/ORCHESTRATION.md): dagster-dlt drops the pipeline's
local working dir before every run and restores the state from the destination, so packages
a killed run left behind are discarded and extracted again (the CLI loads them); the run lock,
the DuckDB file check, Parquet files, the extract pool sized to `workers` and the analysis
views are added here around dagster-dlt's `pipeline.run()`.
"""

from dataclasses import dataclass
from typing import Any, Dict, Iterator, Optional

import dagster as dg
import dlt
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData
from dlt import config as dlt_config
from dlt.extract.source import DltSource

from pipelines.errors import EXIT_CONFIG, explain
from pipelines.run.destinations import (
    DATASET_NAME,
    DUCKDB_MEMORY_LIMIT,
    DUCKDB_PATH,
    extract_pool_polled_often,
    fastest_file_format,
    refresh_views,
    staging_emptied_after_load,
    uncompressed_extract_files,
)
from pipelines.run.guards import run_lock, wait_for_duckdb_file
from pipelines.run.prepare import prepare_run, prepare_source
from sources.openai_fine_tuning.errors import AuthenticationError, ConfigurationError
from sources.openai_fine_tuning.http.stopping import clear_stop
from sources.openai_fine_tuning.job_lists import JOB_LISTS
from sources.openai_fine_tuning.settings import CONFIG_SECTION

GROUP_NAME = "openai_fine_tuning"
RESOURCE_KEY = "dlt"  # dagster-dlt's examples inject DagsterDltResource under this key
# the upstream every asset reads; dagster-dlt would otherwise name the hidden resource
# (`openai_fine_tuning_jobs_to_read`), which is no asset anyone can materialize
UPSTREAM = dg.AssetKey("openai_fine_tuning_api")
DESCRIPTIONS = {
    "jobs": "One row per fine-tuning job, rewritten when the job changes (merge on id).",
    "checkpoints": "Checkpoints of every job with their metrics (merge on id).",
    "events": "Job events (merge on id); `metrics` events also fill `step_metrics`.",
    "files": "Metadata of the training, validation and result files the jobs name.",
    "results": "Rows of the results CSV of every finished job (merge on file_id, step).",
    "training_data": "Every line of every training and validation file (`training_examples`,"
    " merge on file_id, line), and the `files` columns that rebuild each file.",
    "models": "Every model the key lists, with its shutdown date (merge on id).",
}
# tables filled from a resource's items besides its own (`step_metrics` from `events`)
DERIVED = {
    **{spec.name: tuple(table.name for table in spec.derived) for spec in JOB_LISTS},
    "training_data": ("training_examples", "files"),
}
# errors a retry cannot fix: the Dagster run fails without using its retry policy
NOT_RETRIED = (EXIT_CONFIG, AuthenticationError.exit_code)


class FineTuningTranslator(DagsterDltTranslator):
    """dagster-dlt's asset specs, with a real upstream, descriptions and an optional key
    prefix (to keep several targets in one code location apart)."""

    def __init__(self, key_prefix: Optional[str] = None) -> None:
        self.key_prefix = key_prefix

    def get_asset_spec(self, data: DltResourceTranslatorData) -> dg.AssetSpec:
        spec = super().get_asset_spec(data)
        key = spec.key.with_prefix(self.key_prefix) if self.key_prefix else spec.key
        description = DESCRIPTIONS.get(data.resource.name, spec.description)
        return spec.replace_attributes(key=key, deps=[UPSTREAM], description=description)


@dataclass(frozen=True)
class FineTuningAssets:
    """What `build_assets` made: the multi-asset and the dlt objects behind it."""

    assets: dg.AssetsDefinition
    pipeline: dlt.Pipeline
    source: DltSource
    pipeline_name: str


def rows_by_table(pipeline: dlt.Pipeline, resource: str) -> Dict[str, int]:
    """Rows the last run extracted into each table a resource fills: its own, its child
    tables, and the tables derived from its items; tables with no new rows are left out."""
    info = pipeline.last_trace.last_normalize_info if pipeline.last_trace else None
    roots = (resource, *DERIVED.get(resource, ()))
    return {
        table: count
        for table, count in sorted((info.row_counts if info else {}).items())
        if any(table == root or table.startswith(f"{root}__") for root in roots)
    }


def _extract_pool(workers: int) -> Dict[str, Any]:
    """Config that sizes dlt's extract pool (5 threads by default) to the source's request
    slots, as `openai-ft load` passes to `extract()`: pipeline.run() takes no such argument.
    Scoped to this source; nothing the user configured is overridden."""
    values = {}
    for key, value in (("workers", workers), ("max_parallel_items", 4 * workers)):
        scoped = f"{CONFIG_SECTION}.extract.{key}"
        if dlt.config.get(f"extract.{key}") is None and dlt.config.get(scoped) is None:
            values[scoped] = value
    return values


def build_assets(
    destination: str = "duckdb",
    duckdb_path: str = DUCKDB_PATH,
    dataset: str = DATASET_NAME,
    pipelines_dir: Optional[str] = None,
    pipeline_name: Optional[str] = None,
    duckdb_memory_limit: str = DUCKDB_MEMORY_LIMIT,
    wait: bool = False,
    wait_timeout: float = 600.0,
    key_prefix: Optional[str] = None,
    **source_options: Any,
) -> FineTuningAssets:
    """The `@dlt_assets` multi-asset loading one target.

    The source is built here (dagster-dlt needs it to name the assets), so its API key must
    resolve now: `OPENAI_API_KEY`, `.dlt/secrets.toml`, or `api_key=` in `source_options`.

    Args:
        destination: `duckdb` or any dlt destination name (credentials through dlt config).
        duckdb_path: The DuckDB file, for the `duckdb` destination.
        dataset: Dataset (schema) name.
        pipelines_dir: dlt's working dir (also where the run lock lives); dlt's default when
            None. Give the one `openai-ft load --pipelines-dir` uses if both load this target.
        pipeline_name: The dlt pipeline name; by default `openai-ft load`'s for the same target
            (`openai_fine_tuning_<digest>`), so both keep one state per target.
        duckdb_memory_limit: DuckDB's buffer pool while loading.
        wait: Wait for another run of this pipeline, or a process holding the DuckDB file,
            instead of failing (up to `wait_timeout` seconds).
        wait_timeout: Seconds `wait` waits at most.
        key_prefix: Prefix of every asset key, e.g. to load two targets in one code location.
        **source_options: Passed to `openai_fine_tuning()` (api_key, base_url, organization,
            project, job_ids, resources, page_size, workers, ...).

    Returns:
        The assets, the pipeline, the source and the pipeline name.
    """
    prepared = prepare_run(
        destination,
        duckdb_path,
        dataset,
        pipelines_dir,
        pipeline_name,
        duckdb_memory_limit,
        **source_options,
    )
    source, owner, pipeline = prepared.source, prepared.owner, prepared.pipeline
    name, workers = prepared.pipeline_name, prepared.settings.workers
    translator = FineTuningTranslator(key_prefix)
    resource_of = {
        translator.get_asset_spec(DltResourceTranslatorData(resource=r, pipeline=pipeline)).key: n
        for n, r in source.selected_resources.items()
    }

    @dlt_assets(
        dlt_source=source,
        dlt_pipeline=pipeline,
        name=f"{key_prefix}_{name}" if key_prefix else name,
        group_name=GROUP_NAME,
        dagster_dlt_translator=translator,
        pool=name,  # optional: a pool limit of 1 keeps runs on different hosts apart
    )
    def openai_fine_tuning_assets(
        context: dg.AssetExecutionContext, dlt: DagsterDltResource
    ) -> Iterator[dg.MaterializeResult]:
        clear_stop()
        uncompressed_extract_files()
        staging_emptied_after_load()
        extract_pool_polled_often()
        pool = _extract_pool(workers)
        notify = context.log.info
        try:
            # a new source per run: dagster-dlt strips the column hints off the schema it
            # reads for metadata (dagster-io/dagster#34052), the source's own, so a source
            # object cannot run twice; the one above only names the assets
            again = prepare_source(destination, duckdb_path, dataset, **source_options)
            run_source, run_owner = again.source, again.owner
            if run_owner.digest != owner.digest:
                raise ConfigurationError(
                    f"The target changed since the definitions were loaded: now"
                    f" {run_owner.description}, was {owner.description}; reload them"
                )
            # the CLI's lock file: a Dagster run and an `openai-ft load` never overlap
            with (
                run_lock(name, pipeline.pipelines_dir, wait, wait_timeout, notify),
                dlt_config.values(pool),  # for this run only
            ):
                if destination == "duckdb":
                    wait_for_duckdb_file(duckdb_path, wait, wait_timeout, notify).close()
                loader_file_format = fastest_file_format(pipeline)
                results = list(
                    dlt.run(
                        context=context,
                        dlt_source=run_source,
                        loader_file_format=loader_file_format,
                    )
                )
                # list(): the load runs to its end first, so the tables are there
                views = refresh_views(pipeline)
        except Exception as error:
            code, message = explain(error)
            if code in NOT_RETRIED:
                raise dg.Failure(description=message, allow_retries=False) from error
            raise
        context.log.info(f"views refreshed: {', '.join(views) or 'none'}")
        for result in results:
            tables = rows_by_table(pipeline, resource_of[result.asset_key])
            metadata = {**(result.metadata or {}), "rows_by_table": tables, "views": views}
            yield result._replace(metadata=metadata)

    return FineTuningAssets(openai_fine_tuning_assets, pipeline, source, name)


def make_definitions(
    cron_schedule: Optional[str] = "0 * * * *",
    retries: int = 2,
    retry_delay: float = 300.0,
    **options: Any,
) -> dg.Definitions:
    """Dagster definitions: the assets of one target, a job with a retry policy, a schedule.

    Args:
        cron_schedule: When the job runs (hourly by default; the schedule starts stopped,
            as Dagster's do). None for no schedule.
        retries: Retries of a failed run (not for configuration or authentication errors).
        retry_delay: Seconds before the first retry; doubles per retry.
        **options: Passed to `build_assets()` (duckdb_path, dataset, pipelines_dir, api_key,
            base_url, ...).

    Returns:
        The definitions, with a `DagsterDltResource` under the `dlt` resource key.
    """
    built = build_assets(**options)
    job = dg.define_asset_job(
        name=f"{built.assets.op.name}_job",
        selection=dg.AssetSelection.assets(built.assets),
        op_retry_policy=dg.RetryPolicy(
            max_retries=retries, delay=retry_delay, backoff=dg.Backoff.EXPONENTIAL
        ),
    )
    schedules = (
        [dg.ScheduleDefinition(job=job, cron_schedule=cron_schedule)] if cron_schedule else []
    )
    return dg.Definitions(
        assets=[built.assets],
        jobs=[job],
        schedules=schedules,
        resources={RESOURCE_KEY: DagsterDltResource()},
    )
