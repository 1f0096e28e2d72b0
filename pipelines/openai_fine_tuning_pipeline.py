"""Loads OpenAI fine-tuning history into DuckDB (or any dlt destination).

Run `python pipelines/openai_fine_tuning_pipeline.py` with `OPENAI_API_KEY` set, or use the
`openai-ft load` command, which calls `load()` below.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import dlt
from dlt.common.destination import TLoaderFileFormat
from dlt.common.pipeline import LoadInfo

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipelines.guards import DestinationError, check_duckdb_file, run_lock  # noqa: E402
from pipelines.recovery import finish_interrupted_run  # noqa: E402
from pipelines.views import create_views  # noqa: E402
from sources.openai_fine_tuning import RunStats, openai_fine_tuning  # noqa: E402
from sources.openai_fine_tuning.errors import ConfigurationError  # noqa: E402
from sources.openai_fine_tuning.settings import DEFAULT_WORKERS  # noqa: E402
from sources.openai_fine_tuning.stats import UnreadableFile  # noqa: E402

PIPELINE_NAME = "openai_fine_tuning"
DATASET_NAME = "openai_fine_tuning"
DUCKDB_PATH = "openai_ft.duckdb"
DUCKDB_MEMORY_LIMIT = "128MB"
NORMALIZE_WORKERS = min(2, os.cpu_count() or 1)
MEMORY_SIZE = re.compile(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)", re.IGNORECASE)


# The tables the source writes, always shown in the summary (child tables only when written).
TABLES = ("jobs", "checkpoints", "events", "step_metrics", "files", "results")


@dataclass
class LoadSummary:
    """What one run did, for the summary the command prints."""

    destination: str
    dataset: str
    jobs_seen: int
    rows: Dict[str, int]
    requests: int
    elapsed: float
    recovered_packages: int = 0
    lowest_concurrency: Optional[int] = None
    workers: Optional[int] = None
    missing_files: List[str] = field(default_factory=list)
    skipped: Dict[str, int] = field(default_factory=dict)
    unreadable_files: List[UnreadableFile] = field(default_factory=list)
    views: List[str] = field(default_factory=list)
    info: Optional[LoadInfo] = None

    def warnings(self) -> List[str]:
        """Lines for stderr: what this run could not load and will try again."""
        return [problem.line() for problem in self.unreadable_files]

    def lines(self) -> List[str]:
        lines = []
        if self.recovered_packages:
            lines.append(
                f"  finished {self.recovered_packages} load package(s) left by an interrupted run"
            )
        if self.lowest_concurrency and self.workers and self.lowest_concurrency < self.workers:
            lines.append(
                f"  rate limited: concurrency lowered from {self.workers}"
                f" to {self.lowest_concurrency}"
            )
        written = ", ".join(f"{table} {count:,}" for table, count in self.rows.items())
        lines += [
            f"Loaded into {self.destination}, dataset {self.dataset}",
            f"  jobs seen: {self.jobs_seen}   rows written: {written}",
            f"  requests: {self.requests}   elapsed: {self.elapsed:.2f} s",
        ]
        if self.missing_files:
            lines.append(
                f"  files deleted or expired (404, not requested again): {len(self.missing_files)}"
            )
        if self.skipped.get("step_metrics"):
            lines.append(
                "  metrics events whose data is not a step's metrics (kept in events, not in"
                f" step_metrics): {self.skipped['step_metrics']}"
            )
        lines += [f"  {line}" for line in self.warnings()]
        return lines


def make_pipeline(
    destination: str = "duckdb",
    duckdb_path: str = DUCKDB_PATH,
    dataset: str = DATASET_NAME,
    pipelines_dir: Optional[str] = None,
    pipeline_name: str = PIPELINE_NAME,
    duckdb_memory_limit: str = DUCKDB_MEMORY_LIMIT,
) -> dlt.Pipeline:
    """The dlt pipeline; DuckDB writes to `duckdb_path`, other destinations use dlt config.

    DuckDB's buffer pool is capped at `duckdb_memory_limit` on the loading connection: it
    otherwise grows toward 80% of RAM with the rows merged, and a scheduled job should keep
    a flat footprint (bench/NOTES.md). Queries on the file are not affected.
    """
    if not MEMORY_SIZE.fullmatch(duckdb_memory_limit):
        raise ConfigurationError(
            f"Invalid DuckDB memory limit {duckdb_memory_limit!r}: expected a size such as"
            " 128MB or 2GB (--duckdb-memory-limit)"
        )
    if destination == "duckdb" and Path(duckdb_path).stem == dataset:
        # DuckDB names the file's catalog after its stem: `name.table` would then be ambiguous
        raise ConfigurationError(
            f"The DuckDB file {Path(duckdb_path).name!r} is named like the dataset {dataset!r}:"
            " DuckDB could not tell the catalog from the schema; choose another --duckdb-path"
            " or --dataset"
        )
    target: Any = (
        dlt.destinations.duckdb(
            credentials={
                "database": os.path.abspath(duckdb_path),
                "global_config": {"memory_limit": duckdb_memory_limit},
            }
        )
        if destination == "duckdb"
        else destination
    )
    return dlt.pipeline(
        pipeline_name=pipeline_name,
        destination=target,
        dataset_name=dataset,
        pipelines_dir=pipelines_dir,
    )


# dlt gzips the files extraction writes for normalize, which reads them right back; not
# compressing them saves ~2 s of CPU on a 1,000-job first load (bench/NOTES.md). Scoped to
# this source's section, and only when the user did not set it.
EXTRACT_COMPRESSION_KEY = "sources.openai_fine_tuning.data_writer.disable_compression"


def _uncompressed_extract_files() -> None:
    if dlt.config.get(EXTRACT_COMPRESSION_KEY) is None:
        dlt.config[EXTRACT_COMPRESSION_KEY] = True


def existing_pipeline(
    destination: str = "duckdb",
    duckdb_path: str = DUCKDB_PATH,
    dataset: str = DATASET_NAME,
) -> dlt.Pipeline:
    """A pipeline to read data already loaded (`sql`, `report`): a DuckDB file that does not
    exist is an error, not a new empty file. It works in a throwaway working dir: reading
    needs no state, and must not touch (or be confused by) the loading pipeline's."""
    if destination == "duckdb" and not Path(duckdb_path).is_file():
        raise DestinationError(
            f"No DuckDB file at '{duckdb_path}': run `openai-ft load` first, or point"
            " --duckdb-path at the file it wrote"
        )
    workdir = tempfile.mkdtemp(prefix="openai-ft-read-")
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    return make_pipeline(destination, duckdb_path, dataset, workdir, "openai_ft_reader")


def fastest_file_format(pipeline: dlt.Pipeline) -> Optional[TLoaderFileFormat]:
    """Parquet where the destination takes it, else the destination's default.

    On DuckDB, dlt's default (INSERT statements) loads 10k checkpoints in ~2.6 s at ~560 MB
    peak; Parquet in ~0.3 s at ~220 MB (bench/NOTES.md). jsonl is as fast but dlt fails to
    load an empty jsonl file into DuckDB, which a first run of an empty organization makes.
    """
    supported = pipeline.destination.capabilities().supported_loader_file_formats
    return "parquet" if "parquet" in supported else None


def refresh_views(pipeline: dlt.Pipeline) -> List[str]:
    """(Re)creates the analysis views after a load; their names, none without SQL."""
    try:
        return create_views(pipeline)
    except Exception as error:  # the rows are loaded: say what failed, exit as a destination
        raise DestinationError(
            "Loaded, but creating the views (job_summary, best_checkpoints, training_curves)"
            f" failed: {type(error).__name__}: {' '.join(str(error).split())[:300]}"
        ) from error


def describe_destination(pipeline: dlt.Pipeline, duckdb_path: str) -> str:
    if pipeline.destination.destination_name == "duckdb":
        return os.path.abspath(duckdb_path)
    return pipeline.destination.destination_name


def load(
    destination: str = "duckdb",
    duckdb_path: str = DUCKDB_PATH,
    dataset: str = DATASET_NAME,
    pipelines_dir: Optional[str] = None,
    full_refresh: bool = False,
    pipeline_name: str = PIPELINE_NAME,
    wait: bool = False,
    duckdb_memory_limit: str = DUCKDB_MEMORY_LIMIT,
    **source_options: Any,
) -> LoadSummary:
    """Runs one incremental load (or a full reload with `full_refresh`).

    Args:
        destination: `duckdb` or any dlt destination name (credentials through dlt config).
        duckdb_path: The DuckDB file, for the `duckdb` destination.
        dataset: Dataset (schema) name.
        pipelines_dir: dlt's working dir (state, load packages); dlt's default when None.
        full_refresh: Forget the state, drop the tables and load everything again.
        pipeline_name: Name of the dlt pipeline (and its state).
        wait: When another run of this pipeline is in progress, wait for it instead of failing.
        duckdb_memory_limit: DuckDB's buffer pool size while loading (e.g. `128MB`, `2GB`).
        **source_options: Passed to `openai_fine_tuning()` (job_ids, resources, page_size,
            base_url, ...).

    Returns:
        The run's summary.
    """
    started = time.monotonic()
    _uncompressed_extract_files()
    stats = RunStats()
    source = openai_fine_tuning(stats=stats, **source_options)
    pipeline = make_pipeline(
        destination, duckdb_path, dataset, pipelines_dir, pipeline_name, duckdb_memory_limit
    )
    with run_lock(pipeline_name, pipelines_dir, wait):
        if destination == "duckdb":
            check_duckdb_file(duckdb_path)
        # A killed run may have left packages (rows + the ledger they advance). dlt's run()
        # would load them and skip extraction: finish them first, then extract as usual.
        recovered = finish_interrupted_run(pipeline)
        # extract, normalize, load as run() does, but with dlt's extract pool sized to our
        # workers (each job's pages are read in that pool, and enough jobs are queued to keep
        # every request slot busy), and normalize on 2 worker processes (docs/DESIGN.md)
        workers = stats.workers or DEFAULT_WORKERS
        pipeline.extract(
            source,
            refresh="drop_sources" if full_refresh else None,
            workers=workers,
            max_parallel_items=4 * workers,
            loader_file_format=fastest_file_format(pipeline),
        )
        pipeline.normalize(workers=NORMALIZE_WORKERS)
        info = pipeline.load()
        views = refresh_views(pipeline)
    normalize_info = pipeline.last_trace.last_normalize_info
    counts = dict(normalize_info.row_counts) if normalize_info else {}
    rows = {name: counts.get(name, 0) for name in TABLES}
    rows.update(
        (name, count)
        for name, count in sorted(counts.items())
        if count and name not in rows and not name.startswith("_dlt")
    )
    return LoadSummary(
        destination=describe_destination(pipeline, duckdb_path),
        dataset=dataset,
        jobs_seen=stats.jobs_seen,
        rows=rows,
        requests=stats.requests,
        elapsed=time.monotonic() - started,
        recovered_packages=recovered,
        lowest_concurrency=stats.lowest_concurrency,
        workers=stats.workers,
        missing_files=list(stats.missing_files),
        skipped=dict(stats.skipped),
        unreadable_files=list(stats.unreadable_files),
        views=views,
        info=info,
    )


if __name__ == "__main__":
    from pipelines.cli import main

    sys.exit(main(["load", *sys.argv[1:]]))
