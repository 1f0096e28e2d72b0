"""What every run path builds the same way: the source with what it resolved, the state
owner (the target and API identity the state must belong to), the pipeline name and the dlt
pipeline. `load()`, the Dagster assets and the Airflow DAG all start here, so a target gets
one state whichever of them loads it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

import dlt
from dlt.extract.source import DltSource

from pipelines.run.destinations import DUCKDB_MEMORY_LIMIT, make_pipeline
from pipelines.run.targets import (
    default_pipeline_name,
    describe,
    destination_identity,
    target_digest,
)
from sources.openai_fine_tuning import RunStats, SourceSettings, StateOwner, build


@dataclass
class PreparedSource:
    """A source for a target: what it resolved, and the owner its state must have."""

    source: DltSource
    settings: SourceSettings
    owner: StateOwner
    target: Dict[str, Any]  # the destination's identity (no secrets)


@dataclass
class PreparedRun(PreparedSource):
    """A prepared source, with its pipeline (named after the target unless told)."""

    pipeline: dlt.Pipeline = None  # type: ignore[assignment]
    pipeline_name: str = ""


def prepare_source(
    destination: str,
    duckdb_path: str,
    dataset: str,
    stats: Optional[RunStats] = None,
    **source_options: Any,
) -> PreparedSource:
    """The source, and the owner of its state: the target's digest and description, from the
    destination and the API identity the source resolved (no request is made)."""
    owner = StateOwner()
    source, settings = build(stats=stats, state_owner=owner, **source_options)
    target = destination_identity(destination, duckdb_path, dataset)
    owner.digest = target_digest(target, settings.api_identity)
    owner.description = describe(target, settings.api_identity)
    return PreparedSource(source, settings, owner, target)


def prepare_run(
    destination: str,
    duckdb_path: str,
    dataset: str,
    pipelines_dir: Optional[str] = None,
    pipeline_name: Optional[str] = None,
    duckdb_memory_limit: str = DUCKDB_MEMORY_LIMIT,
    stats: Optional[RunStats] = None,
    **source_options: Any,
) -> PreparedRun:
    """`prepare_source()`, and the dlt pipeline of the target: `pipeline_name`, or
    `openai_fine_tuning_<digest>` (one state per target)."""
    prepared = prepare_source(destination, duckdb_path, dataset, stats, **source_options)
    name = pipeline_name or default_pipeline_name(prepared.owner.digest or "")
    pipeline = make_pipeline(
        destination, duckdb_path, dataset, pipelines_dir, name, duckdb_memory_limit
    )
    return PreparedRun(**vars(prepared), pipeline=pipeline, pipeline_name=name)
