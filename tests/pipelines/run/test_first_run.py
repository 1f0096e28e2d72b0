"""Which run is a first one: a new working dir restores its state from the DuckDB file (an
ephemeral runner loads incrementally), a DuckDB file gone while the working dir stayed loads
everything again, and a first run into a new file makes exactly a first load's requests."""

from __future__ import annotations

import shutil

from pipelines.run import TABLES
from tests.helpers import (
    TERMINAL,
    assert_history_equal_truth,
    expected_rerun_requests,
    first_load_routes,
    no_change_rows,
)


def _settled(world):
    return {j["id"] for j in world.truth_jobs() if j["status"] in TERMINAL}


def test_a_first_run_into_a_new_file_makes_a_first_loads_requests(loader, world):
    assert not loader.duckdb_path.exists() and not loader.pipelines_dir.exists()

    summary = loader.run()

    assert loader.sandbox.stats.by_route == first_load_routes(world)
    assert summary.recovered_packages == 0
    assert_history_equal_truth(loader, world)


def test_a_new_working_dir_restores_the_state_from_the_duckdb_file(loader, world):
    loader.run()
    shutil.rmtree(loader.pipelines_dir)  # an ephemeral runner: only the DuckDB file stays
    loader.sandbox.stats.reset()

    summary = loader.run()

    assert summary.rows == no_change_rows(world)
    assert loader.sandbox.stats.by_route == expected_rerun_requests(world, 100, _settled(world))
    assert_history_equal_truth(loader, world)


def test_a_deleted_duckdb_file_with_the_working_dir_kept_loads_everything_again(loader, world):
    loader.run()
    loader.duckdb_path.unlink()  # the working dir's state says loaded; the file says nothing
    loader.sandbox.stats.reset()

    loader.run()

    assert loader.sandbox.stats.by_route == first_load_routes(world)
    assert_history_equal_truth(loader, world)


EVERY_TABLE = {*TABLES, "step_grader_scores"}  # every table a complete load writes


def _staging_tables(loader, dataset="openai_fine_tuning"):
    found = loader.query(
        "SELECT table_name FROM information_schema.tables"
        f" WHERE table_schema = '{dataset}_staging' AND table_name NOT LIKE '_dlt%'"
    )
    return {row["table_name"] for row in found}


def test_tables_new_to_the_file_are_appended_and_the_others_merged(loader, world):
    """A table read once per run that the DuckDB dataset does not have yet is appended (there
    is nothing to merge with: dlt would copy its rows twice, through staging); the tables
    already there merge. Later runs merge everything, and the tables still equal the truth."""
    loader.run(resources=["jobs", "checkpoints"])
    assert _staging_tables(loader) == {"jobs"}

    loader.run()  # every resource: checkpoints merge, the tables new to the file are appended

    assert _staging_tables(loader) == {"jobs", "checkpoints", "files", "models"}
    assert_history_equal_truth(loader, world)
    world.advance(seconds=3600, new_checkpoints=2)
    world.add_job(status="running", checkpoints=1)
    loader.run()
    assert _staging_tables(loader) == EVERY_TABLE
    assert_history_equal_truth(loader, world)


def test_a_dataset_name_dlt_normalizes_still_merges_after_the_first_load(loader, world):
    """`--dataset FineTuning` is written as `fine_tuning`: the tables found there are the
    ones that exist, so the second run merges them (looking for `FineTuning` would append
    into them on every run)."""
    loader.run(dataset="FineTuning")
    assert _staging_tables(loader, "fine_tuning") == {"jobs", "files", "models"}
    world.advance(seconds=3600, new_checkpoints=2)

    loader.run(dataset="FineTuning")

    assert _staging_tables(loader, "fine_tuning") == EVERY_TABLE
