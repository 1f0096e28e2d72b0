"""How dlt loads a normalized package's tables, decided just before it does: the schema inside
the package (dlt loads a package with that schema, not the pipeline's).

- `append_into_new_tables`: a table read at most once per run (`schema.MERGED_ONCE_PER_RUN`)
  that the destination does not have yet is appended. Merging into no rows gives the rows
  themselves, and dlt's merge would copy every row twice (into staging, then into the table):
  half a first load's load step (bench/NOTES.md). Later runs merge, as the pipeline's schema
  says (dlt takes a table's disposition from the resource on every extraction).
- `rank_staging_rows_again`: a package a killed run left is merged with dlt's per-key ranking:
  its run may have committed a copy of some file before dlt recorded it as done, and that copy
  is made again. Its appended tables stay appended (dlt sets a package up in the destination
  once: the staging tables a merge needs would not be created), and recovery keeps one row per
  key of them once the package is loaded (`appended_keys`, `recovery.py`).

An edited schema hashes differently from the pipeline's (dlt bumps the version of a package's
schema whose content changed), so the destination and its staging dataset see a new schema
and create what the next run's merges need.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Collection, Dict, List

import dlt
from dlt.common.storages.load_package import PackageStorage

from sources.openai_fine_tuning.schema import DEDUPLICATED_HINT

# what a table appended because it was new to the destination was declared as (it stays in
# the schema dlt stores in the destination, and in one a new working dir restores from there;
# dlt sets the table back to merge on the next extraction and keeps the hint)
APPENDED_HINT = "x-openai-ft-appended"
_MERGE_HINTS = ("write_disposition", "x-merge-strategy", DEDUPLICATED_HINT)

Table = Dict[str, Any]


def _schema_path(pipeline: dlt.Pipeline, load_id: str) -> Path:
    """The schema inside a normalized package, the one dlt loads it with."""
    package = Path(pipeline.working_dir) / "load" / "normalized" / load_id
    return package / PackageStorage.SCHEMA_FILE_NAME


def _edit_package_schema(
    pipeline: dlt.Pipeline, load_id: str, edit: Callable[[Table], bool]
) -> List[str]:
    """Applies `edit` to every table of a normalized package's schema; returns the tables it
    changed. The new schema is written next to the old one, then renamed over it: a kill
    leaves one or the other."""
    path = _schema_path(pipeline, load_id)
    schema = json.loads(path.read_text(encoding="utf-8"))
    changed = [name for name, table in schema.get("tables", {}).items() if edit(table)]
    if changed:
        fresh = path.with_name(path.name + ".edited")
        fresh.write_text(json.dumps(schema), encoding="utf-8")
        os.replace(fresh, path)
    return changed


def append_into_new_tables(
    pipeline: dlt.Pipeline, load_id: str, existing: Collection[str]
) -> List[str]:
    """Makes the package append into each table read once per run that is not in `existing`
    (the tables the destination's dataset has now); returns those tables."""

    def to_append(table: Table) -> bool:
        if not table.get(DEDUPLICATED_HINT) or table["name"] in existing:
            return False
        table[APPENDED_HINT] = {k: table.pop(k) for k in _MERGE_HINTS if k in table}
        table["write_disposition"] = "append"
        return True

    return _edit_package_schema(pipeline, load_id, to_append)


def rank_staging_rows_again(pipeline: dlt.Pipeline, load_id: str) -> List[str]:
    """Turns dlt's per-key ranking of staging rows back on for a normalized package a killed
    run left; returns the tables changed.

    A package's tables merged `MERGED_ONCE_PER_RUN` hold each key once, so dlt copies their
    staging rows as they are. But a run killed after a staging copy committed and before dlt
    recorded the job as done copies that file again when the package is resumed: the same
    rows twice in staging. Ranked, the merge keeps one of each.
    """
    return _edit_package_schema(
        pipeline, load_id, lambda table: bool(table.pop(DEDUPLICATED_HINT, None))
    )


def appended_keys(pipeline: dlt.Pipeline, load_id: str) -> Dict[str, List[str]]:
    """The tables a normalized package appends into (`append_into_new_tables`), each with its
    primary key's columns."""
    schema = json.loads(_schema_path(pipeline, load_id).read_text(encoding="utf-8"))
    return {
        name: [c for c, column in table["columns"].items() if column.get("primary_key")]
        for name, table in schema.get("tables", {}).items()
        if APPENDED_HINT in table and table.get("write_disposition") == "append"
    }
