"""`results` in the destination, from CSVs of our own: every column but `step` DOUBLE (an
integer-only one too), a column a later file brings becomes a new DOUBLE column, a file of more
rows than one batch loads whole; rows exact, on DuckDB and PostgreSQL."""

from __future__ import annotations

import base64
from typing import Any, Dict, List

import pytest

from pipelines.run import load
from sources.openai_fine_tuning import results
from tests.helpers import API_KEY, assert_history_equal_truth

TYPES = {
    "duckdb": {"double": "DOUBLE", "bigint": "BIGINT", "text": "VARCHAR"},
    "postgres": {"double": "double precision", "bigint": "bigint", "text": "character varying"},
}
HEADER = ["step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy"]


def _csv(header: List[str], rows: List[List[Any]]) -> bytes:
    cells = [",".join("" if v is None else str(v) for v in row) for row in rows]
    return ("\n".join([",".join(header), *cells]) + "\n").encode()


def _expected(file_id: str, job_id: str, header: List[str], rows: List[List[Any]]) -> List[dict]:
    """The rows as loaded, NULL cells left out."""
    out = []
    for row in rows:
        values = {name: float(v) for name, v in zip(header, row, strict=True) if v is not None}
        values["step"] = int(row[0])
        out.append({"file_id": file_id, "fine_tuning_job_id": job_id, **values})
    return out


def _loaded(target, file_id: str) -> List[Dict[str, Any]]:
    rows = target.query(
        "SELECT * FROM {dataset}.results WHERE file_id = '" + file_id + "' ORDER BY step"
    )
    return [
        {k: v for k, v in row.items() if v is not None and not k.startswith("_dlt")} for row in rows
    ]


def _types(target) -> Dict[str, str]:
    rows = target.query(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = '" + target.dataset + "' AND table_name = 'results'"
    )
    return {row["column_name"]: row["data_type"] for row in rows}


def test_columns_come_from_the_csvs_as_double(target, sandbox, world, monkeypatch):
    monkeypatch.setattr(results, "RESULT_BATCH_ROWS", 1000)  # the load runs in this process
    options = {
        "api_key": API_KEY,
        "base_url": sandbox.base_url,
        "resources": ["jobs", "results"],
        **target.load_options(),
    }
    first = next(j for j in world.truth_jobs() if j["status"] == "succeeded")
    (first_file,) = first["result_files"]
    # 2,500 rows (three tables of at most 1,000), an integer-only column, empty cells
    header = [*HEADER, "tokens"]
    rows = [[s, 1 / s, 0.5, None if s % 3 else s / 7, None, s * 10] for s in range(1, 2501)]
    world.set_file_content(first_file, base64.b64encode(_csv(header, rows)))

    load(**options)

    kinds = TYPES[target.name]
    types = _types(target)
    assert types["tokens"] == kinds["double"]  # integers only, still DOUBLE
    assert types["step"] == kinds["bigint"]
    assert types["file_id"] == types["fine_tuning_job_id"] == kinds["text"]
    assert "reward_mean" not in types
    assert _loaded(target, first_file) == _expected(first_file, first["id"], header, rows)

    # a later job's file brings a column of its own: a new DOUBLE column, no code change
    later = world.add_job(status="succeeded", checkpoints=1)
    (later_file,) = later["result_files"]
    header = ["step", "train_loss", "reward_mean"]  # and lacks three of the usual ones
    rows = [[1, 0.75, 1], [2, None, 0.5], [3.0, 0.25, None]]
    world.set_file_content(later_file, _csv(header, rows))

    load(**options)

    types = _types(target)
    assert types["reward_mean"] == kinds["double"]
    assert _loaded(target, later_file) == _expected(later_file, later["id"], header, rows)
    assert len(_loaded(target, first_file)) == 2500  # the earlier rows stay, NULL in it
    nulls = target.query(
        "SELECT count(*) AS n FROM {dataset}.results WHERE _dlt_id IS NULL"
        " OR _dlt_load_id IS NULL OR (file_id = '" + first_file + "' AND reward_mean IS NOT NULL)"
    )
    assert nulls == [{"n": 0}]


@pytest.mark.parametrize("world", [{"big_job_steps": 5000}], indirect=True)
def test_the_sandbox_s_results_equal_its_truth_in_tables_of_bounded_rows(
    loader, world, monkeypatch
):
    """The sandbox's own CSVs, one of 5,000 steps, read in tables of 1,000 rows."""
    monkeypatch.setattr(results, "RESULT_BATCH_ROWS", 1000)
    loader.run(resources=["jobs", "results"])
    assert_history_equal_truth(loader, world, resources=("results",))
    steps = loader.query("SELECT max(step) AS n FROM {dataset}.results")
    assert steps == [{"n": 5000}]
