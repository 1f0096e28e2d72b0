"""Finishing what a killed run left in dlt's working dir, before the next run extracts."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import List

import dlt
from dlt.common.storages.load_package import PackageStorage

from sources.openai_fine_tuning.schema import DEDUPLICATED_HINT

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


def rank_staging_rows_again(pipeline: dlt.Pipeline, load_id: str) -> None:
    """Turns dlt's per-key ranking of staging rows back on for a normalized package a killed
    run left.

    A package's tables merged `MERGED_ONCE_PER_RUN` hold each key once, so dlt copies their
    staging rows as they are. But a run killed after a staging copy committed and before dlt
    recorded the job as done copies that file again when the package is resumed: the same rows
    twice in staging. dlt loads a package with the schema inside it, so the hint comes out of
    that schema (written next to it, then renamed over it: a kill leaves one or the other).
    """
    package = Path(pipeline.working_dir) / "load" / "normalized" / load_id
    path = package / PackageStorage.SCHEMA_FILE_NAME
    schema = json.loads(path.read_text(encoding="utf-8"))
    declared = [t for t in schema.get("tables", {}).values() if t.pop(DEDUPLICATED_HINT, None)]
    if declared:
        fresh = path.with_name(path.name + ".ranked")
        fresh.write_text(json.dumps(schema), encoding="utf-8")
        os.replace(fresh, path)


def finish_interrupted_run(pipeline: dlt.Pipeline) -> List[str]:
    """Normalizes and loads packages a killed run left behind; returns their load ids.

    Also restores the state from the destination when the working dir is new (dlt's run()
    with no data does both), so an ephemeral runner keeps loading incrementally.
    """
    drop_half_deleted_extract_packages(pipeline)
    normalized = pipeline.list_normalized_load_packages()
    pending = pipeline.list_extracted_load_packages() + normalized
    for load_id in normalized:  # only these may be half loaded
        rank_staging_rows_again(pipeline, load_id)
    info = pipeline.run()
    # dlt drops the packages of a first run whose destination was never created (it wipes the
    # working dir to restore state from it): count what it really loaded
    loaded = set(info.loads_ids) if info is not None else set()
    return [load_id for load_id in pending if load_id in loaded]
