"""Rows to Arrow tables: declared types, types from values, JSON text, row ids."""

import pyarrow as pa
import pytest

from sources.openai_fine_tuning.columnar import (
    ColumnTypeError,
    ColumnTypes,
    empty_table,
    table_of,
    with_row_ids,
)
from sources.openai_fine_tuning.rows import flatten_into
from sources.openai_fine_tuning.schema import EVENT_COLUMNS, RESULT_ROW_COLUMNS

EVENTS = ColumnTypes(EVENT_COLUMNS)


def test_declared_types_timestamps_and_json_text():
    table = table_of(
        [
            {"id": "e1", "created_at": 1_700_000_000, "data": {"step": 1}, "level": "info"},
            {"id": "e2", "created_at": 1_700_000_001, "data": None, "extra": 2.5},
        ],
        EVENTS,
        ("id",),
    )
    assert table.schema.field("created_at").type == pa.timestamp("us", tz="UTC")
    assert table.column("created_at").cast(pa.int64()).to_pylist() == [
        1_700_000_000_000_000,
        1_700_000_001_000_000,
    ]
    assert table.column("data").to_pylist() == ['{"step":1}', None]
    assert table.column("extra").to_pylist() == [None, 2.5]  # undeclared: typed by its values
    assert table.column("_dlt_id").to_pylist() == ["e1", "e2"]
    assert not table.schema.field("id").nullable
    assert table.schema.field("level").nullable


def test_mixed_values_and_lists_become_json_text():
    table = table_of(
        [{"id": "a", "x": 1.0, "l": [1, 2]}, {"id": "b", "x": "high", "l": None}],
        EVENTS,
        ("id",),
    )
    assert table.column("x").to_pylist() == ["1.0", '"high"']
    assert table.column("l").to_pylist() == ["[1,2]", None]


def test_a_value_that_does_not_fit_its_declared_type_is_named():
    with pytest.raises(ColumnTypeError, match=r"^created_at 'yesterday' \(not Unix seconds\)$"):
        table_of([{"id": "a", "created_at": "yesterday"}], EVENTS, ("id",))
    with pytest.raises(ColumnTypeError, match=r"^level 3 \(not string\)$"):
        table_of([{"id": "a", "level": "info"}, {"id": "b", "level": 3}], EVENTS, ("id",))


def test_row_ids_of_a_compound_key():
    table = pa.table({"file_id": ["f", "f"], "step": [1, 2]})
    assert with_row_ids(table, ("file_id", "step")).column("_dlt_id").to_pylist() == [
        "f/1",
        "f/2",
    ]
    kept = table.append_column("_dlt_id", pa.array(["x", "y"]))
    assert with_row_ids(kept, ("file_id", "step")).column("_dlt_id").to_pylist() == ["x", "y"]


def test_flatten_into_joins_paths_makes_numbers_floats_and_sets_lists_apart():
    row, lists = {}, {}
    flatten_into(
        row,
        {"a": 1, "b": {"c": 2, "d": None, "e": "t", "f": [1]}, "g": True, "h": None},
        "",
        lists,
    )
    assert row == {"a": 1.0, "b__c": 2.0, "b__e": "t", "g": True}
    assert lists == {"b__f": [1]}


def test_empty_table_has_the_hinted_columns_and_a_row_id():
    table = empty_table(ColumnTypes(RESULT_ROW_COLUMNS), ("file_id", "step"))
    assert table.num_rows == 0
    assert table.schema.field("step").type == pa.int64()
    assert "_dlt_id" in table.column_names
