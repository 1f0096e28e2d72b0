"""Rows as Arrow tables: a page of API items becomes one `pyarrow.Table` per table.

dlt writes Arrow tables straight to Parquet and its normalize does no per-row work on them;
the same rows as Python dicts cost about 60 µs each in dlt's extract and normalize. So every
table with many rows is handed to dlt as Arrow (the few `jobs` and `files` rows stay dicts;
`models` is one list, but re-read on every run: as dicts its ~4,000 rows in the benchmark's
organization were a tenth of a no-change rerun).

Column types come from the resource's hints (`schema.py`); a column no hint names is typed
from its values: numbers DOUBLE (rows carry every metric as a float), text VARCHAR, booleans
BOOLEAN. So a metric the API adds later still becomes a new column, with no code change. A
column whose values mix kinds (a number in one row, text in another) keeps each value as its
JSON text.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Collection, Dict, List, Mapping, Sequence

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.schema.typing import TTableSchemaColumns

from .errors import UpstreamError

# dlt loads timestamps in microseconds; timezone-aware columns are UTC
TIMESTAMP = pa.timestamp("us", tz="UTC")
_SECONDS = pa.timestamp("s", tz="UTC")
ROW_ID = "_dlt_id"
ROW_ID_SEPARATOR = "/"
LOAD_ID = "_dlt_load_id"

_ARROW_TYPES = {
    "text": pa.string(),
    "bigint": pa.int64(),
    "double": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": TIMESTAMP,
    "json": pa.string(),  # JSON text; the column's `json` hint makes it JSON in the destination
    "date": pa.date32(),
}


class ColumnTypeError(ValueError):
    """A value that does not fit its column's declared type."""

    def __init__(self, column: str, value: Any, data_type: str) -> None:
        super().__init__(f"{column} {value!r:.60} (not {data_type})")
        self.column = column


class ColumnTypes:
    """The Arrow type of each hinted column of a table, read from its dlt column hints.

    Args:
        columns: The table's dlt column hints.
    """

    def __init__(self, columns: TTableSchemaColumns) -> None:
        self.types: Dict[str, pa.DataType] = {
            name: _ARROW_TYPES[column["data_type"]]
            for name, column in columns.items()
            if column.get("data_type") in _ARROW_TYPES
        }
        self.json = frozenset(n for n, c in columns.items() if c.get("data_type") == "json")
        self.timestamps = frozenset(
            n for n, c in columns.items() if c.get("data_type") == "timestamp"
        )
        self.not_null = frozenset(n for n, c in columns.items() if c.get("nullable") is False)


def _json_text(value: Any) -> Any:
    return None if value is None else orjson.dumps(value).decode()


def _column(name: str, values: List[Any], types: ColumnTypes) -> pa.Array:
    if name in types.json:
        return pa.array([_json_text(v) for v in values], pa.string())
    if name in types.timestamps:
        # `models` makes its few rows with datetimes; the first value says which (a mix fails
        # below, naming the value): one look per column, not a scan of every page's values
        if isinstance(next((v for v in values if v is not None), None), datetime):
            return _declared(name, values, TIMESTAMP, "a timestamp")
        # rows carry Unix seconds (range-checked by `rows.unix_seconds`): no datetime per row
        return _declared(name, values, pa.int64(), "Unix seconds").cast(_SECONDS).cast(TIMESTAMP)
    declared = types.types.get(name)
    if declared is not None:
        return _declared(name, values, declared, str(declared))
    try:
        array = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array([_json_text(v) for v in values], pa.string())
    if pa.types.is_nested(array.type):  # rows flatten objects; a list left here is JSON text
        return pa.array([_json_text(v) for v in values], pa.string())
    return array


def _declared(name: str, values: List[Any], data_type: pa.DataType, called: str) -> pa.Array:
    try:
        return pa.array(values, data_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        raise ColumnTypeError(name, _misfit(values, data_type), called) from None


def _misfit(values: List[Any], data_type: pa.DataType) -> Any:
    """The first value that does not fit `data_type`."""
    for value in values:
        try:
            pa.array([value], data_type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            return value
    return None


def table_of(rows: Sequence[Mapping[str, Any]], types: ColumnTypes, key: Sequence[str]) -> pa.Table:
    """The rows as one Arrow table: a column per key any row has, typed by `types` or by its
    values, plus `_dlt_id` made of the primary key `key`.

    A value a row lacks is NULL. `_dlt_id` is dlt's row id, a column every table loaded by
    dlt from dicts has (NOT NULL in the destination): made of the key, it is unique and the
    same whenever the row is loaded again.
    """
    names = dict.fromkeys(name for row in rows for name in row)
    arrays = [_column(name, [row.get(name) for row in rows], types) for name in names]
    fields = [
        pa.field(name, array.type, nullable=name not in types.not_null)
        for name, array in zip(names, arrays, strict=True)
    ]
    table = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    return with_row_ids(table, key)


def checked_table_of(
    rows: Sequence[Mapping[str, Any]], types: ColumnTypes, key: Sequence[str], answered: str
) -> pa.Table:
    """`table_of`, or an `UpstreamError` "<answered> with <column> <value> (not <type>)" for
    a value that does not fit its column (`answered` names the endpoint and what it sent)."""
    try:
        return table_of(rows, types, key)
    except ColumnTypeError as error:
        raise UpstreamError(f"{answered} with {error}") from None


def with_row_ids(table: pa.Table, key: Sequence[str]) -> pa.Table:
    """The table with `_dlt_id` made of its `key` columns (joined by `/`), unless it has one."""
    if ROW_ID in table.column_names:
        return table
    parts = [table.column(name) for name in key]
    if len(parts) == 1 and pa.types.is_string(parts[0].type):
        ids = parts[0]
    else:
        ids = pc.binary_join_element_wise(
            *(part.cast(pa.string()) for part in parts), ROW_ID_SEPARATOR
        )
    # nullable: `training_examples` was loaded by 0.1 without `_dlt_id`, and dlt adds a
    # NOT NULL column to a table with rows only by failing; where the column exists NOT NULL
    # (the tables 0.1 loaded from dicts), dlt keeps that hint and every value is set
    return table.append_column(pa.field(ROW_ID, pa.string(), nullable=True), ids)


def with_load_id_slot(table: pa.Table) -> pa.Table:
    """The table with a `_dlt_load_id` column for dlt to fill in, unless it has one.

    dlt sets the load id of Arrow rows as it extracts them: in the table's own
    `_dlt_load_id` column, where the table's schema has it, or else in a column appended last.
    Appended, it comes after every column the schema learned after its first rows (a new
    metric name): the extracted file's columns then differ from the schema's order, and dlt's
    normalize rewrites the whole file instead of importing it (bench/NOTES.md). With the
    column there, dlt puts the file's columns in the schema's order.
    """
    if LOAD_ID in table.column_names:
        return table
    slot = pa.repeat(pa.scalar("", pa.string()), table.num_rows)
    return table.append_column(pa.field(LOAD_ID, pa.string(), nullable=False), slot)


def empty_table(types: ColumnTypes, key: Sequence[str]) -> pa.Table:
    """A table of no rows with the hinted columns: creates the table before its first rows."""
    return with_row_ids(
        pa.schema(
            [pa.field(n, t, nullable=n not in types.not_null) for n, t in types.types.items()]
        ).empty_table(),
        key,
    )


class _JsonHintKept(logging.Filter):
    """Drops dlt's warning that a column's `json` hint overrides the Arrow type `text`, for
    this source's Arrow resources: they send JSON columns as JSON text on purpose, and dlt
    would print the warning for every page."""

    def __init__(self, resources: Collection[str]) -> None:
        super().__init__()
        self._prefixes = tuple(
            f"In resource: {name}, when merging arrow schema" for name in resources
        )

    def filter(self, record: logging.LogRecord) -> bool:  # noqa: A003
        return not str(record.msg).startswith(self._prefixes)


def keep_json_hints_quietly(resources: Collection[str], logger_name: str = "dlt") -> None:
    """Installs `_JsonHintKept` for `resources` on dlt's logger, once."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, _JsonHintKept) for f in logger.filters):
        logger.addFilter(_JsonHintKept(resources))
