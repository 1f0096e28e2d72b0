"""Finishing what a killed run left in dlt's working dir, before the next run extracts."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Dict, List

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


# load ids of resumed packages with appended tables, and their keys, until their rows are
# cleaned: written before dlt loads them, so a run killed after the load still finds them
APPENDED_PACKAGES_FILE = "appended_packages.json"


def _appended_packages(pipeline: dlt.Pipeline) -> Dict[str, Dict[str, List[str]]]:
    path = Path(pipeline.working_dir) / APPENDED_PACKAGES_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _record_appended_packages(pipeline: dlt.Pipeline, packages: Dict[str, Any]) -> None:
    path = Path(pipeline.working_dir) / APPENDED_PACKAGES_FILE
    if not packages:
        path.unlink(missing_ok=True)
        return
    fresh = path.with_name(path.name + ".new")
    fresh.write_text(json.dumps(packages), encoding="utf-8")
    os.replace(fresh, path)  # a kill leaves the old list or the new one


def keep_one_row_per_key(pipeline: dlt.Pipeline, load_id: str, keys: Dict[str, List[str]]) -> None:
    """Leaves the tables a resumed package appended into as a merge would have: of each key
    the package brought, its own row only, once.

    A run killed after an append committed and before dlt recorded the job as done appends
    that file again; and rows of the same keys may have come meanwhile from another load
    (a run from another working dir on the same target). Each key comes once per package
    (`package_schema.append_into_new_tables`), so the package's first row of a key stays.
    DuckDB only (`rowid`), as appending into new tables is. Running it again changes nothing.
    """
    with pipeline.sql_client() as client:
        for table, columns in keys.items():
            name = client.make_qualified_table_name(table)
            same_key = " AND ".join(
                f"s.{c} = d.{c}" for c in map(client.escape_column_name, columns)
            )
            group = ", ".join(client.escape_column_name(column) for column in columns)
            client.execute_sql(
                f"DELETE FROM {name} AS d WHERE d._dlt_load_id <> %s AND EXISTS"
                f" (SELECT 1 FROM {name} AS s WHERE s._dlt_load_id = %s AND {same_key})",
                load_id,
                load_id,
            )
            client.execute_sql(
                f"DELETE FROM {name} WHERE _dlt_load_id = %s AND rowid NOT IN"
                f" (SELECT min(rowid) FROM {name} WHERE _dlt_load_id = %s GROUP BY {group})",
                load_id,
                load_id,
            )


def _loaded_load_ids(pipeline: dlt.Pipeline, load_ids: List[str]) -> List[str]:
    """Which of `load_ids` the destination recorded as loaded (`_dlt_loads`)."""
    with pipeline.sql_client() as client:
        table = client.make_qualified_table_name(pipeline.default_schema.loads_table_name)
        marks = ", ".join(["%s"] * len(load_ids))
        found = client.execute_sql(
            f"SELECT load_id FROM {table} WHERE load_id IN ({marks})", *load_ids
        )
    return [load_id for (load_id,) in found or []]


def clean_appended_packages(pipeline: dlt.Pipeline) -> None:
    """`keep_one_row_per_key` for each recorded package the destination has loaded; forgets
    the ones that are neither loaded nor pending any more (dlt started the state over)."""
    packages = _appended_packages(pipeline)
    if not packages:
        return
    pending = set(pipeline.list_normalized_load_packages())
    for load_id in _loaded_load_ids(pipeline, list(packages)):
        keep_one_row_per_key(pipeline, load_id, packages.pop(load_id))
        _record_appended_packages(pipeline, packages)  # each one cleaned is forgotten
    _record_appended_packages(pipeline, {k: v for k, v in packages.items() if k in pending})


def finish_interrupted_run(pipeline: dlt.Pipeline) -> List[str]:
    """Normalizes and loads packages a killed run left behind; returns their load ids.

    Also restores the state from the destination when the working dir is new (dlt's run()
    with no data does both), so an ephemeral runner keeps loading incrementally.
    """
    drop_half_deleted_extract_packages(pipeline)
    normalized = pipeline.list_normalized_load_packages()
    pending = pipeline.list_extracted_load_packages() + normalized
    appended = _appended_packages(pipeline)
    for load_id in normalized:  # only these may be half loaded
        rank_staging_rows_again(pipeline, load_id)
        keys = appended_keys(pipeline, load_id)
        if keys:
            appended[load_id] = keys
    _record_appended_packages(pipeline, appended)
    info = pipeline.run()
    # dlt drops the packages of a first run whose destination was never created (it wipes the
    # working dir to restore state from it): count what it really loaded
    loaded = set(info.loads_ids) if info is not None else set()
    clean_appended_packages(pipeline)
    return [load_id for load_id in pending if load_id in loaded]
