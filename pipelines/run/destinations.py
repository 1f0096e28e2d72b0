"""The destination side of a run: the dlt pipeline for a target, how files are written, the
views, and what a load wrote."""

from __future__ import annotations

import atexit
import copy
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

import dlt
from dlt.common.destination import DestinationCapabilitiesContext, TLoaderFileFormat
from dlt.common.destination.reference import AnyDestination
from dlt.common.normalizers.naming import NamingConvention

from pipelines.analysis.views import create_views
from pipelines.errors import DestinationError
from pipelines.run.guards import open_duckdb_file
from pipelines.run.summary import TABLES
from pipelines.run.targets import missing_driver
from sources.openai_fine_tuning.errors import ConfigurationError

DATASET_NAME = "openai_fine_tuning"
DUCKDB_PATH = "openai_ft.duckdb"
DUCKDB_MEMORY_LIMIT = "64MB"
MEMORY_SIZE = re.compile(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)", re.IGNORECASE)


def make_pipeline(
    destination: str = "duckdb",
    duckdb_path: str = DUCKDB_PATH,
    dataset: str = DATASET_NAME,
    pipelines_dir: Optional[str] = None,
    pipeline_name: str = "openai_fine_tuning",
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
    pipeline = dlt.pipeline(
        pipeline_name=pipeline_name,
        destination=target,
        dataset_name=dataset,
        pipelines_dir=pipelines_dir,
    )
    try:
        _ = pipeline.destination.client_class  # imports the driver: fail now, not later
    except ModuleNotFoundError as error:
        raise missing_driver(pipeline.destination.destination_name, error) from None
    remember_capabilities(pipeline.destination)
    return pipeline


def remember_capabilities(destination: AnyDestination) -> None:
    """Makes `destination` work out its capabilities once per naming convention.

    dlt asks the destination for its capabilities a dozen times a run (every step, every
    client), and each ask without a configuration resolves the destination's whole
    configuration from every config provider again: ~25 ms each, a third of a no-change
    rerun (bench/NOTES.md). Within one destination object the answer does not change (a new
    pipeline makes a new object), so it is kept; each ask gets a copy, as dlt changes it.
    """
    ask = destination.capabilities
    known: Dict[Any, DestinationCapabilitiesContext] = {}

    def capabilities(
        config: Any = None, naming: Optional[NamingConvention] = None
    ) -> DestinationCapabilitiesContext:
        if config is not None:
            return ask(config, naming)
        key = naming and (type(naming), naming.is_case_sensitive, naming.max_length)
        if key not in known:
            known[key] = ask(None, naming)
        return copy.deepcopy(known[key])

    destination.capabilities = capabilities  # type: ignore[method-assign]


# dlt gzips the files extraction writes for normalize, which reads them right back; not
# compressing them saves ~2 s of CPU on a 1,000-job first load (bench/NOTES.md). Scoped to
# this source's section, and only when the user did not set it.
EXTRACT_COMPRESSION_KEY = "sources.openai_fine_tuning.data_writer.disable_compression"


def uncompressed_extract_files() -> None:
    """Extraction writes its intermediate files uncompressed (unless configured)."""
    if dlt.config.get(EXTRACT_COMPRESSION_KEY) is None:
        dlt.config[EXTRACT_COMPRESSION_KEY] = True


FUTURES_POLL_KEY = "extract.futures_poll_interval"
FUTURES_POLL_SECONDS = 0.002  # dlt's default is 0.01


def extract_pool_polled_often() -> None:
    """dlt's extraction checks its pool of parallel steps every 2 ms, not 10 (unless
    configured).

    dlt's pipe iterator sleeps one poll interval each time a parallel step ends a generator
    (it takes the step's empty result for an empty pool): each job's read ends one, and the
    ~18 that end after a no-change rerun's last response slept ~0.1 s there. Measured A/B
    (bench/NOTES.md): no-change rerun 0.96, jobs and checkpoints 0.995, 0 ms first load 1.00.
    """
    if dlt.config.get(FUTURES_POLL_KEY) is None:
        dlt.config[FUTURES_POLL_KEY] = FUTURES_POLL_SECONDS


STAGING_TRUNCATED_KEY = "load.truncate_staging_dataset"


def staging_emptied_after_load() -> None:
    """dlt empties the staging dataset once a load completes (unless configured).

    dlt merges through a staging copy of every table a run writes and, by default, keeps that
    copy until the next run: the destination holds each row twice (a 1,000-job archive in
    DuckDB: 97 MB instead of 72 MB), and DuckDB writes both copies when the file is closed
    (1.2 s instead of 0.5 s, bench/NOTES.md). The next run fills staging again anyway.
    """
    if dlt.config.get(STAGING_TRUNCATED_KEY) is None:
        dlt.config[STAGING_TRUNCATED_KEY] = True


def existing_pipeline(
    destination: str = "duckdb",
    duckdb_path: str = DUCKDB_PATH,
    dataset: str = DATASET_NAME,
) -> dlt.Pipeline:
    """A pipeline to read data already loaded (`sql`, `report`): a DuckDB file that does not
    exist is an error, not a new empty file, and one held by another process a
    `DuckDBLockedError` naming its PID (exit 5, as `load` says it). It works in a throwaway
    working dir: reading needs no state, and must not touch (or be confused by) the loading
    pipeline's."""
    if destination == "duckdb":
        if not Path(duckdb_path).is_file():
            raise DestinationError(
                f"No DuckDB file at '{duckdb_path}': run `openai-ft load` first, or point"
                " --duckdb-path at the file it wrote"
            )
        # opened once here, read-write as dlt's client opens it (a reader elsewhere conflicts
        # too): dlt would say "IOException", or blame credentials and the network, instead
        open_duckdb_file(duckdb_path).close()
    workdir = tempfile.mkdtemp(prefix="openai-ft-read-")
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    return make_pipeline(destination, duckdb_path, dataset, workdir, "openai_ft_reader")


def fastest_file_format(pipeline: dlt.Pipeline) -> Optional[TLoaderFileFormat]:
    """Parquet on DuckDB, MotherDuck and files, else the destination's own preferred format.

    On DuckDB, dlt's default (INSERT statements) loads 10k checkpoints in ~2.6 s at ~560 MB
    peak; Parquet in ~0.3 s at ~220 MB (bench/NOTES.md). jsonl is as fast but dlt fails to
    load an empty jsonl file into DuckDB, which a first run of an empty organization makes.
    Elsewhere "supported" can mean "with an optional driver" (PostgreSQL takes Parquet only
    through ADBC, and warns per table without it): the destination's default is the safe one.
    """
    if pipeline.destination.destination_name in ("duckdb", "motherduck", "filesystem"):
        return "parquet"
    return None


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


def rows_written(
    pipeline: dlt.Pipeline, load_ids: Iterable[str], extracted: Dict[str, int]
) -> Dict[str, int]:
    """Rows each table holds from this run's loads (merged rows counted once), from the
    destination: root tables by their load id, nested tables (which carry none) through their
    root row. Normalized counts where the destination has no SQL, and for a table without
    `_dlt_load_id` (Arrow rows get one only while dlt's parquet normalizer is told to add it,
    which the source does unless configured otherwise)."""
    ids = sorted(set(load_ids))
    rows = {name: extracted.get(name, 0) for name in TABLES}
    rows.update(
        (name, count)
        for name, count in sorted(extracted.items())
        if count and name not in rows and not name.startswith("_dlt")
    )
    if not ids or pipeline.destination.destination_name == "filesystem":
        return rows
    from dlt.common.schema.utils import get_root_table
    from dlt.destinations.exceptions import DatabaseException, DatabaseUndefinedRelation

    schema = pipeline.default_schema
    marks = ", ".join(["%s"] * len(ids))
    with pipeline.sql_client() as client:
        for table in schema.data_tables():
            name = table["name"]
            root = get_root_table(schema.tables, name)["name"]
            if "_dlt_load_id" not in schema.tables[root]["columns"]:
                continue  # Arrow rows loaded without a load id: the normalized count
            qualified = client.make_qualified_table_name(name)
            if root == name:
                query = f"SELECT count(*) FROM {qualified} WHERE _dlt_load_id IN ({marks})"
            else:  # merge keeps nested rows only for their current root row
                query = (
                    f"SELECT count(*) FROM {qualified} AS n JOIN"
                    f" {client.make_qualified_table_name(root)} AS r"
                    f" ON n._dlt_root_id = r._dlt_id WHERE r._dlt_load_id IN ({marks})"
                )
            try:
                result = client.execute_sql(query, *ids)
            except DatabaseUndefinedRelation:  # never created: its resource never ran
                continue
            except DatabaseException:  # a counting problem must not fail a loaded run
                continue  # the normalized count stays
            count = int(result[0][0]) if result else 0
            if count or name in TABLES:
                rows[name] = count
            else:
                rows.pop(name, None)
    return rows
