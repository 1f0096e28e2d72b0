"""Finishing what a killed run left in dlt's working dir, before the next run extracts."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import List

import dlt


def drop_committed_extract_leftovers(pipeline: dlt.Pipeline) -> List[str]:
    """Deletes extracted packages whose normalized twin was already committed.

    dlt's normalize commits a package by renaming it into `load/normalized` (atomic) and then
    deletes the extracted copy file by file ("Committing storage, do not kill this process").
    A SIGKILL in between leaves a half-deleted extracted package that the next normalize
    fails on. Its twin holds all of its data, so the leftover is safe to drop.

    Returns:
        The load ids whose leftovers were dropped.
    """
    committed = set(pipeline.list_normalized_load_packages())
    committed |= set(pipeline.list_completed_load_packages())
    leftovers = sorted(set(pipeline.list_extracted_load_packages()) & committed)
    for load_id in leftovers:
        shutil.rmtree(Path(pipeline.working_dir) / "normalize" / "extracted" / load_id)
    return leftovers


def finish_interrupted_run(pipeline: dlt.Pipeline) -> int:
    """Normalizes and loads packages a killed run left behind; returns how many there were."""
    drop_committed_extract_leftovers(pipeline)
    if not pipeline.has_pending_data:
        return 0
    pending = len(pipeline.list_extracted_load_packages())
    pending += len(pipeline.list_normalized_load_packages())
    pipeline.run()  # with no data, dlt's run() normalizes and loads what is pending
    return pending
