"""Column hints of every table: types the data alone would not give (timestamps, JSON, BIGINT).

Columns not named here still load: dlt adds them as they appear (a new metric becomes a new
DOUBLE column, because rows carry every number as a float). The tables handed to dlt as Arrow
take their column types from here too (`columnar.ColumnTypes`).
"""

from typing import Any, Dict

from dlt.common.schema.typing import TTableSchemaColumns, TWriteDispositionConfig

from .settings import (
    CHECKPOINT_METRICS,
    JOB_JSON_FIELDS,
    JOB_TEXT_FIELDS,
    JOB_TIMESTAMP_FIELDS,
    RESULT_COLUMNS,
)

# Merged on the primary key. A table whose rows one run extracts at most once each (the Arrow
# tables: every item of a job's list is read once per run, every file once ever) is declared
# deduplicated: dlt then copies its staging rows into the table as they are, without ranking
# them per key first (that ranking was half of a first load's load step, bench/NOTES.md). The
# `jobs`, `files` and `models` tables keep dlt's ranking: a run writes a file's row twice
# (`files`, then `training_data` with its content columns). A package a killed run left may
# hold a staging copy made twice: `pipelines/run/recovery.py` loads it with the ranking on.
MERGED: TWriteDispositionConfig = "merge"
MERGED_ONCE_PER_RUN: TWriteDispositionConfig = {
    "disposition": "merge",
    "strategy": "delete-insert",
    "deduplicated": True,
}
DEDUPLICATED_HINT = "x-stage-data-deduplicated"  # where dlt keeps `deduplicated` in a table


def _column(data_type: str, nullable: bool = True, **hints: Any) -> Dict[str, Any]:
    # a new dict per column: dlt writes the column name into it
    return {"data_type": data_type, "nullable": nullable, **hints}


def _key(data_type: str = "text") -> Dict[str, Any]:
    return _column(data_type, nullable=False, primary_key=True)


def _timestamp(nullable: bool = True) -> Dict[str, Any]:
    return _column("timestamp", nullable=nullable, timezone=True)


JOB_COLUMNS: TTableSchemaColumns = {
    "id": _key(),
    **{name: _timestamp() for name in JOB_TIMESTAMP_FIELDS},
    **{name: _column("json") for name in JOB_JSON_FIELDS},
    **{name: _column("text") for name in JOB_TEXT_FIELDS},
    "trained_tokens": _column("bigint"),
    "seed": _column("bigint"),
}  # type: ignore[dict-item]

CHECKPOINT_COLUMNS: TTableSchemaColumns = {
    "id": _key(),
    "created_at": _timestamp(nullable=False),
    "fine_tuned_model_checkpoint": _column("text"),
    "fine_tuning_job_id": _column("text"),
    "step_number": _column("bigint"),
    "object": _column("text"),
    **{f"metrics__{name}": _column("double") for name in CHECKPOINT_METRICS},
}  # type: ignore[dict-item]


def _job_item() -> Dict[str, Any]:
    """The columns every item of a job's list has."""
    return {
        "id": _key(),
        "fine_tuning_job_id": _column("text", nullable=False),
        "created_at": _timestamp(nullable=False),
    }


EVENT_COLUMNS: TTableSchemaColumns = {
    **_job_item(),
    "level": _column("text"),
    "type": _column("text"),
    "message": _column("text"),
    "data": _column("json"),  # as sent: its shape differs by event type and method
}  # type: ignore[dict-item]

STEP_METRICS_COLUMNS: TTableSchemaColumns = {
    **_job_item(),
    "step": _column("bigint"),
    "total_steps": _column("bigint"),
}  # type: ignore[dict-item]

STEP_GRADER_SCORE_COLUMNS: TTableSchemaColumns = {
    "id": _key(),  # the step's: its `metrics` event's id
    "position": _key("bigint"),  # the grader's place in the step's list, from 0
    "fine_tuning_job_id": _column("text", nullable=False),
    "step": _column("bigint"),
    "name": _column("text"),
}  # type: ignore[dict-item]

FILE_COLUMNS: TTableSchemaColumns = {
    "id": _key(),
    "filename": _column("text"),
    "bytes": _column("bigint"),
    "purpose": _column("text"),
    "created_at": _timestamp(),
    "expires_at": _timestamp(),
    "status": _column("text"),
    # training and validation files, once `training_data` archived them (training_data.py)
    "sha256": _column("text"),
    "lines": _column("bigint"),
    "line_ending": _column("text"),
    "final_newline": _column("bool"),
    "bom": _column("bool"),
    "utf8": _column("bool"),
}  # type: ignore[dict-item]

TRAINING_EXAMPLE_COLUMNS: TTableSchemaColumns = {
    "file_id": _key(),
    "line": _key("bigint"),
    "raw": _column("text", nullable=False),
    "valid_json": _column("bool", nullable=False),
    "kind": _column("text"),
    "messages": _column("bigint"),
    "has_tools": _column("bool"),
    "chars": _column("bigint", nullable=False),
}  # type: ignore[dict-item]

MODEL_COLUMNS: TTableSchemaColumns = {
    "id": _key(),
    "created": _timestamp(),
    "owned_by": _column("text"),
    "shutdown_date": _column("date"),
    "last_seen_at": _timestamp(nullable=False),
    # Azure's shape: kept whole
    "capabilities": _column("json"),
    "deprecation": _column("json"),
}  # type: ignore[dict-item]

RESULT_ROW_COLUMNS: TTableSchemaColumns = {
    "file_id": _key(),
    "step": _key("bigint"),
    "fine_tuning_job_id": _column("text", nullable=False),
    **{name: _column("double") for name in RESULT_COLUMNS},
}  # type: ignore[dict-item]
