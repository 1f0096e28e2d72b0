"""One load of OpenAI fine-tuning history into DuckDB (or any dlt destination): the source,
the target and its state, the run lock, what a killed run left, extract / normalize / load,
the views, and the summary. No argparse and no printing: the command (`pipelines/cli/load.py`),
the script (`pipelines/openai_fine_tuning_pipeline.py`) and the orchestrators call `load()`.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, List, Optional

import dlt

from pipelines.analysis.views import upcoming_shutdowns
from pipelines.run.destinations import (
    DATASET_NAME,
    DUCKDB_MEMORY_LIMIT,
    DUCKDB_PATH,
    describe_destination,
    extract_pool_polled_often,
    fastest_file_format,
    refresh_views,
    rows_written,
    staging_emptied_after_load,
    uncompressed_extract_files,
)
from pipelines.run.guards import holding_duckdb_file, run_lock
from pipelines.run.package_schema import append_into_new_tables
from pipelines.run.prepare import PreparedRun, prepare_run
from pipelines.run.recovery import finish_interrupted_run
from pipelines.run.signals import end_children_with_parent
from pipelines.run.summary import LoadSummary
from pipelines.run.warmup import import_in_background
from sources.openai_fine_tuning import RunStats, ledger_counts
from sources.openai_fine_tuning.http.stopping import clear_stop
from sources.openai_fine_tuning.source import ARROW_LOAD_ID_KEY

NORMALIZE_WORKERS = min(2, os.cpu_count() or 1)
# Below this much extracted data, normalize in this process: forking the pool and polling it
# costs ~0.4 s, what a worker takes for ~3 MB (bench/NOTES.md), and most scheduled runs bring
# far less
PARALLEL_NORMALIZE_BYTES = 4 * 1024 * 1024


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# dlt loads up to 20 files at once; into DuckDB (one file, one buffer pool, two cores here)
# two at a time load a 1,000-job first load faster and in 100 MB less than 20 (bench/NOTES.md)
DUCKDB_LOAD_WORKERS = 2
DLT_LOAD_WORKERS = 20  # dlt's default, for the other destinations


def load_workers(pipeline: dlt.Pipeline) -> int:
    """Load jobs run at once: 2 into DuckDB, else dlt's 20 (`load.workers` in dlt config,
    e.g. LOAD__WORKERS, decides when set)."""
    configured = dlt.config.get("load.workers")
    if configured is not None:
        return max(1, int(configured))
    if pipeline.destination.destination_name == "duckdb":
        return DUCKDB_LOAD_WORKERS
    return DLT_LOAD_WORKERS


def normalize_workers(pipeline: dlt.Pipeline) -> int:
    """Worker processes for normalizing what extraction left: 1 for little data, else 2
    (`normalize.workers` in dlt config, e.g. NORMALIZE__WORKERS, decides when set)."""
    configured = dlt.config.get("normalize.workers")
    if configured is not None:
        return max(1, int(configured))
    extracted = Path(pipeline.working_dir) / "normalize" / "extracted"
    size = sum(f.stat().st_size for f in extracted.glob("*/new_jobs/*") if f.is_file())
    return NORMALIZE_WORKERS if size >= PARALLEL_NORMALIZE_BYTES else 1


def read_job_list_ahead(prepared: PreparedRun, pipeline: dlt.Pipeline) -> bool:
    """Starts reading the job list ahead (`listing.ListingAhead`) with the state as this run
    finds it, before recovery and dlt's setup; True when started (not on a first run)."""
    listing = prepared.settings.listing_ahead
    if listing is None:
        return False
    state = pipeline.state.get("sources", {}).get(prepared.source.name, {})
    return listing.start(state, list(prepared.source.selected_resources), prepared.owner)


def nothing_to_recover(pipeline: dlt.Pipeline, destination: str, duckdb_path: str) -> bool:
    """True for a first run into a DuckDB file not created yet, by a pipeline with nothing in
    its working dir: no package to finish, no state to restore, so recovery's run of dlt
    (~0.2 s: it creates the file to look for a state) is skipped. A working dir with a state
    whose file is gone still goes through it (dlt then starts that state over)."""
    if destination != "duckdb" or os.path.exists(duckdb_path):
        return False
    return not pipeline.has_data


def append_where_nothing_to_merge(pipeline: dlt.Pipeline) -> List[str]:
    """Makes the packages about to load append into the tables read once per run that the
    DuckDB dataset does not have yet (`package_schema.append_into_new_tables`: a first load
    copies its rows once, not through staging); returns those tables. Called with the file
    held, so no other process adds a table before the load. Not when the Arrow rows would not
    carry their load id (configured off): recovery finds a resumed package's rows by it."""
    if dlt.config.get(ARROW_LOAD_ID_KEY) is False:
        return []
    with pipeline.sql_client() as client:  # its dataset name is the normalized one dlt writes
        found = client.execute_sql(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            client.dataset_name,
        )
    existing = {name for (name,) in found or []}
    appended: List[str] = []
    for load_id in pipeline.list_normalized_load_packages():
        appended += append_into_new_tables(pipeline, load_id, existing)
        existing.update(appended)  # a second package would merge into what the first wrote
    return appended


def load(
    destination: str = "duckdb",
    duckdb_path: str = DUCKDB_PATH,
    dataset: str = DATASET_NAME,
    pipelines_dir: Optional[str] = None,
    full_refresh: bool = False,
    pipeline_name: Optional[str] = None,
    wait: bool = False,
    wait_timeout: float = 600.0,
    duckdb_memory_limit: str = DUCKDB_MEMORY_LIMIT,
    summary: Optional[LoadSummary] = None,
    stats: Optional[RunStats] = None,
    notify: Callable[[str], None] = _stderr,
    **source_options: Any,
) -> LoadSummary:
    """Runs one incremental load (or a full reload with `full_refresh`).

    Args:
        destination: `duckdb` or any dlt destination name (credentials through dlt config).
        duckdb_path: The DuckDB file, for the `duckdb` destination.
        dataset: Dataset (schema) name.
        pipelines_dir: dlt's working dir (state, load packages); dlt's default when None.
        full_refresh: Forget the state, drop the tables and load everything again.
        pipeline_name: Name of the dlt pipeline (and its state). By default
            `openai_fine_tuning_<digest>`, the digest of the target (destination, DuckDB file
            or database, dataset) and the API identity (base URL, organization, project):
            one state per target. A state recorded for another target is refused.
        wait: When another run of this pipeline is in progress, or the DuckDB file is held by
            another process, wait for it (up to `wait_timeout` seconds) instead of failing.
        wait_timeout: Seconds `wait` waits at most.
        duckdb_memory_limit: DuckDB's buffer pool size while loading (e.g. `128MB`, `2GB`).
        summary: Filled as the run goes (so a failed run still tells what it knows); a new
            one when None.
        stats: Counters the run updates (requests, rows, jobs), e.g. for a progress line.
        notify: Told what the run waits for, once per wait.
        **source_options: Passed to `openai_fine_tuning()` (job_ids, resources, page_size,
            base_url, ...).

    Returns:
        The run's summary.
    """
    started = time.monotonic()
    summary = summary if summary is not None else LoadSummary()
    stats = stats if stats is not None else RunStats()
    clear_stop()  # a stop asked of an earlier run in this process is not this run's
    end_children_with_parent()  # normalize's worker processes, should this one be killed
    uncompressed_extract_files()
    staging_emptied_after_load()
    extract_pool_polled_often()
    prepared: Optional[PreparedRun] = None
    try:
        prepared = prepare_run(
            destination,
            duckdb_path,
            dataset,
            pipelines_dir,
            pipeline_name,
            duckdb_memory_limit,
            stats,
            **source_options,
        )
        source, pipeline, name = prepared.source, prepared.pipeline, prepared.pipeline_name
        summary.pipeline_name = name
        summary.workers = prepared.settings.workers
        summary.pipelines_dir = os.path.abspath(pipeline.pipelines_dir)
        summary.destination = describe_destination(pipeline, duckdb_path)
        summary.dataset = dataset
        with run_lock(name, pipeline.pipelines_dir, wait, wait_timeout, notify):
            holding = (destination, duckdb_path, wait, wait_timeout, notify)
            # A killed run may have left packages (rows + the ledger they advance). dlt's run()
            # would load them and skip extraction: finish them first, then extract as usual.
            # (Opening the DuckDB file here also checks it before any API request.)
            first_ever = nothing_to_recover(pipeline, destination, duckdb_path)
            with holding_duckdb_file(*holding):
                if not full_refresh:  # the job list's chain of pages, beside the setup below
                    read_job_list_ahead(prepared, pipeline)
                recovered = [] if first_ever else finish_interrupted_run(pipeline)
            summary.recovered_packages = len(recovered)
            # extract, normalize, load as run() does, but with dlt's extract pool sized to our
            # workers (each job's pages are read in that pool, and enough jobs are queued to
            # keep every request slot busy), and normalize on 2 worker processes
            workers = prepared.settings.workers
            # what dlt's load step imports, while extraction waits on the API (started at the
            # run's start, its imports held the GIL the setup needed: rerun A/B 0.97)
            import_in_background()
            pipeline.extract(
                source,
                refresh="drop_sources" if full_refresh else None,
                workers=workers,
                max_parallel_items=4 * workers,
                loader_file_format=fastest_file_format(pipeline),
            )
            pipeline.normalize(workers=normalize_workers(pipeline))
            with holding_duckdb_file(*holding):
                if destination == "duckdb":
                    append_where_nothing_to_merge(pipeline)
                info = pipeline.load(workers=load_workers(pipeline))
                summary.views = refresh_views(pipeline)
                summary.shutdowns = upcoming_shutdowns(pipeline, summary.views)
                # still under the lock: counting opens the destination, which the next run
                # may be waiting to use (a DuckDB file takes one writer process at a time)
                normalize_info = pipeline.last_trace.last_normalize_info
                extracted = dict(normalize_info.row_counts) if normalize_info else {}
                summary.load_ids = [*recovered, *info.loads_ids]
                summary.rows = rows_written(pipeline, summary.load_ids, extracted)
            summary.open_jobs, summary.settled_jobs = ledger_counts(pipeline.state)
        summary.info = info
        return summary
    finally:
        if prepared is not None and prepared.settings.listing_ahead is not None:
            prepared.settings.listing_ahead.close()
        summary.jobs_seen = stats.jobs_seen
        summary.requests = stats.requests
        summary.retries = stats.retries
        summary.rate_limited = stats.rate_limited
        summary.lowest_concurrency = stats.lowest_concurrency
        summary.missing_files = list(stats.missing_files)
        summary.skipped = dict(stats.skipped)
        summary.unreadable_files = list(stats.unreadable_files)
        summary.training_files = stats.training_files
        summary.invalid_training_lines = stats.invalid_training_lines
        summary.non_utf8_files = list(stats.non_utf8_files)
        summary.models_skipped = stats.skipped_lists.get("models")
        summary.elapsed = time.monotonic() - started
