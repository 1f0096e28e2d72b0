"""Finishing what a killed run left in dlt's working dir, before the next run extracts."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Dict, List

import dlt
from dlt.common.storages.load_package import PackageStorage

from pipelines.run.package_schema import appended_keys, rank_staging_rows_again

# what every extracted package has from the moment dlt's atomic rename publishes it
_PACKAGE_PARTS = (
    PackageStorage.SCHEMA_FILE_NAME,
    PackageStorage.NEW_JOBS_FOLDER,
    PackageStorage.STARTED_JOBS_FOLDER,
    PackageStorage.COMPLETED_JOBS_FOLDER,
    PackageStorage.FAILED_JOBS_FOLDER,
)


def drop_half_deleted_extract_packages(pipeline: dlt.Pipeline) -> List[str]:
    """Deletes extracted packages that dlt was deleting when the process was killed.

    dlt deletes an extracted package file by file once it no longer needs it: after
    normalize committed its twin into `load/normalized` by an atomic rename ("Committing
    storage, do not kill this process"), or when the package turned out empty. A SIGKILL in
    between leaves a package with parts missing, and the next normalize fails on it. Such a
    package has either a committed twin or nothing to load, so it is safe to finish deleting.

    Returns:
        The load ids of the packages dropped.
    """
    committed = set(pipeline.list_normalized_load_packages())
    committed |= set(pipeline.list_completed_load_packages())
    extracted = Path(pipeline.working_dir) / "normalize" / "extracted"
    dropped = []
    for load_id in pipeline.list_extracted_load_packages():
        package = extracted / load_id
        if load_id in committed or not all((package / p).exists() for p in _PACKAGE_PARTS):
            shutil.rmtree(package)
            dropped.append(load_id)
    return dropped


def keep_one_row_per_key(pipeline: dlt.Pipeline, load_id: str, keys: Dict[str, List[str]]) -> None:
    """Deletes the rows a resumed package appended twice: a run killed after an append
    committed and before dlt recorded the job as done appends that file again. Each key of
    such a table comes once per package (`package_schema.append_into_new_tables`), so of the
    package's rows one per key stays. DuckDB only, as appending into new tables is."""
    with pipeline.sql_client() as client:
        for table, columns in keys.items():
            name = client.make_qualified_table_name(table)
            key = ", ".join(client.escape_column_name(column) for column in columns)
            client.execute_sql(
                f"DELETE FROM {name} WHERE _dlt_load_id = %s AND rowid NOT IN"
                f" (SELECT min(rowid) FROM {name} WHERE _dlt_load_id = %s GROUP BY {key})",
                load_id,
                load_id,
            )


def finish_interrupted_run(pipeline: dlt.Pipeline) -> List[str]:
    """Normalizes and loads packages a killed run left behind; returns their load ids.

    Also restores the state from the destination when the working dir is new (dlt's run()
    with no data does both), so an ephemeral runner keeps loading incrementally.
    """
    drop_half_deleted_extract_packages(pipeline)
    normalized = pipeline.list_normalized_load_packages()
    pending = pipeline.list_extracted_load_packages() + normalized
    appended = {}
    for load_id in normalized:  # only these may be half loaded
        rank_staging_rows_again(pipeline, load_id)
        appended[load_id] = appended_keys(pipeline, load_id)
    info = pipeline.run()
    # dlt drops the packages of a first run whose destination was never created (it wipes the
    # working dir to restore state from it): count what it really loaded
    loaded = set(info.loads_ids) if info is not None else set()
    for load_id, keys in appended.items():
        if keys and load_id in loaded:
            keep_one_row_per_key(pipeline, load_id, keys)
    return [load_id for load_id in pending if load_id in loaded]
