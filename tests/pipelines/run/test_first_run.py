"""Which run is a first one: a new working dir restores its state from the DuckDB file (an
ephemeral runner loads incrementally), a DuckDB file gone while the working dir stayed loads
everything again, and a first run into a new file makes exactly a first load's requests."""

from __future__ import annotations

import shutil

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
