"""Arrow tables gathered across jobs: every row goes out once, whatever the order in which
jobs end and the job list ends."""

import itertools

import pyarrow as pa
import pytest

from sources.openai_fine_tuning.batching import ArrowBatcher


def _table(ids, **columns):
    return pa.table({"id": ids, **columns})


def _ids(batches):
    return [(name, table.column("id").to_pylist()) for name, table in batches]


def test_a_batch_goes_out_when_a_table_reaches_its_rows():
    batcher = ArrowBatcher(rows=3)
    batcher.expect()
    assert batcher.add("events", _table(["a", "b"])) == []
    assert batcher.add("step_metrics", _table(["a"])) == []
    assert _ids(batcher.add("events", _table(["c", "d"]))) == [("events", ["a", "b", "c", "d"])]
    # the rest goes out when the last job is done and the list has ended
    assert batcher.job_done() == []
    assert _ids(batcher.listing_done()) == [("step_metrics", ["a"])]
    assert batcher.listing_done() == []


def test_columns_are_unified_new_metrics_are_null_elsewhere():
    batcher = ArrowBatcher(rows=10)
    batcher.expect()
    batcher.add("step_metrics", _table(["a"], train_loss=[1.0]))
    batcher.add("step_metrics", _table(["b"], valid_loss=[2.0]))
    batcher.listing_done()
    [(name, table)] = batcher.job_done()
    assert name == "step_metrics"
    assert table.to_pylist() == [
        {"id": "a", "train_loss": 1.0, "valid_loss": None},
        {"id": "b", "train_loss": None, "valid_loss": 2.0},
    ]


def test_tables_whose_types_conflict_go_out_as_they_are():
    batcher = ArrowBatcher(rows=10)
    batcher.expect()
    batcher.add("events", _table(["a"], x=[1.0]))
    batcher.add("events", _table(["b"], x=["text"]))
    batcher.listing_done()
    batches = batcher.job_done()
    assert [t.column("x").type for _, t in batches] == [pa.float64(), pa.string()]
    assert _ids(batches) == [("events", ["a"]), ("events", ["b"])]


@pytest.mark.parametrize("order", list(itertools.permutations(["job1", "job2", "listed"])))
def test_nothing_stays_behind_whichever_ends_last(order):
    batcher = ArrowBatcher(rows=100)
    batcher.expect()
    batcher.expect()
    batcher.add("events", _table(["1"]))
    batcher.add("events", _table(["2"]))
    out = []
    for step in order:
        out += batcher.listing_done() if step == "listed" else batcher.job_done()
    assert _ids(out) == [("events", ["1", "2"])]


def test_reset_forgets_a_stopped_extraction():
    batcher = ArrowBatcher(rows=100)
    batcher.expect()
    batcher.add("events", _table(["old"]))
    batcher.reset()
    batcher.add("events", _table(["new"]))
    assert _ids(batcher.listing_done()) == [("events", ["new"])]
