"""Models and their shutdown dates (`models`), and the `model_lifecycle` view: which
fine-tuned models stop serving when, and whether the data to retrain them is archived."""

from __future__ import annotations

import json
from datetime import date
from typing import Any, Dict, List

import pytest

from pipelines.analysis.report_data import LIFECYCLE_COLUMNS
from tests.helpers import (
    assert_history_equal_truth,
    assert_models_equal_truth,
    lifecycle_truth,
)


def _lifecycle(loader) -> List[Dict[str, Any]]:
    return loader.query(
        f"SELECT {', '.join(LIFECYCLE_COLUMNS)} FROM {{dataset}}.model_lifecycle ORDER BY model"
    )


def test_models_and_their_lifecycle_equal_the_truth(loader, world, sandbox):
    # the default world's deleted model is a fine-tune of a base already shut down: delete one
    # more, of a base still serving, for a model that is "not listed"
    serving = {m["id"] for m in world.truth_models() if not m["shutdown_date"]}
    serving |= {
        m["id"]
        for m in world.truth_models()
        if m["shutdown_date"] and date.fromisoformat(m["shutdown_date"]) > date.today()
    }
    gone = next(
        c["fine_tuned_model_checkpoint"]
        for c in world.truth_checkpoints()
        if c["fine_tuned_model_checkpoint"].split(":")[1] in serving
    )
    world.delete_model(gone)
    summary = loader.run()
    assert_history_equal_truth(loader, world)
    assert sandbox.stats.by_route["GET /v1/models"] == 1
    lifecycle = _lifecycle(loader)
    assert lifecycle == lifecycle_truth(world, date.today())
    states = {row["state"] for row in lifecycle}
    assert states >= {"shut down", "not listed", "retiring", "serving"}  # every case drawn
    assert {r["date_from"] for r in lifecycle} == {"model", "root model", None}
    by_model = {row["model"]: row for row in lifecycle}
    assert by_model[world.own_date_model_id()]["date_from"] == "model"
    assert by_model[gone]["state"] == "not listed"
    for model in world.deleted_model_ids():
        assert by_model[model]["state"] in ("not listed", "shut down")
    trained_on_fine_tuned = world.fine_tuned_base_job_id()
    [derived] = [
        r
        for r in lifecycle
        if r["fine_tuning_job_id"] == trained_on_fine_tuned and r["kind"] == "fine-tuned"
    ]
    assert derived["base_model"].startswith("ft:")
    assert derived["root_model"] == derived["base_model"].split(":")[1]
    # the summary: models that stop within 90 days
    soon = [r for r in lifecycle if r["state"] == "retiring" and r["days_left"] <= 90]
    assert soon, "the sandbox has a date ahead within 90 days"
    shutdowns = summary.shutdowns
    assert (shutdowns.models, shutdowns.checkpoints, shutdowns.first_date) == (
        len(soon),
        sum(r["kind"] == "checkpoint" for r in soon),
        min(r["shutdown_date"] for r in soon).isoformat(),
    )
    assert shutdowns.without_training_data == sum(not r["training_data_archived"] for r in soon)
    line = next(line for line in summary.lines() if "stop serving within 90 days" in line)
    assert line == (
        f"  fine-tuned models that stop serving within 90 days: {len(soon)}"
        f" ({shutdowns.checkpoints} of them checkpoints), the first on {shutdowns.first_date};"
        f" {shutdowns.without_training_data} without archived training data (view"
        " model_lifecycle)"
    )


def test_a_date_announced_later_is_read_on_the_next_run(loader, world, sandbox):
    loader.run()
    before = {m["id"]: m["shutdown_date"] for m in world.truth_models()}
    world.advance(seconds=3600, new_checkpoints=0)
    after = {m["id"]: m["shutdown_date"] for m in world.truth_models()}
    announced = [m for m in after if before.get(m) is None and after[m] is not None]
    assert len(announced) == 1
    sandbox.stats.reset()
    loader.run()
    assert sandbox.stats.by_route["GET /v1/models"] == 1
    with loader.reading():
        assert_models_equal_truth(loader, world)
        assert _lifecycle(loader) == lifecycle_truth(world, date.today())


def test_lifecycle_is_unknown_before_models_were_ever_read(loader, world):
    loader.run(resources=["jobs", "checkpoints", "training_data"])
    assert _lifecycle(loader) == lifecycle_truth(world, date.today(), models_read=False)


def test_a_key_without_the_models_scope_skips_models_and_loads_the_rest(cli, sandbox, world):
    sandbox.models_forbidden = True
    code, out, err = cli("--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["models_skipped"] == (
        "GET /v1/models answered 403 (You have insufficient permissions for this operation."
        " Missing scopes: api.model.read.): the key may not list models (scope"
        " api.model.read), so shutdown dates are not known; the rest is loaded"
    )
    assert summary["exit_code"] == 0 and summary["rows_written"]["jobs"] == len(world.job_ids())
    code, out, err = cli()
    assert code == 0, err
    assert err == f"openai-ft: warning: models skipped: {summary['models_skipped']}"
    assert f"  models skipped: {summary['models_skipped']}" in out.splitlines()


@pytest.mark.parametrize("forbidden_then_allowed", [True])
def test_models_load_once_the_key_gets_the_scope(loader, world, sandbox, forbidden_then_allowed):
    sandbox.models_forbidden = forbidden_then_allowed
    loader.run()
    assert loader.count("models") == 0
    sandbox.models_forbidden = False
    summary = loader.run()
    assert summary.models_skipped is None
    with loader.reading():
        assert_models_equal_truth(loader, world)


def test_dates_from_an_earlier_listing_say_so(loader, world, sandbox):
    loader.run()
    sandbox.models_forbidden = True
    summary = loader.run()
    assert summary.models_skipped is not None
    [line] = [line for line in summary.lines() if "stop serving within 90 days" in line]
    assert line.endswith("(view model_lifecycle) — dates from an earlier run's models list")
    assert summary.shutdowns.models > 0  # the archive still knows the dates it read


def test_a_model_whose_owner_is_not_text_ends_the_run_naming_the_list_and_the_value(cli, world):
    """`models` goes to dlt as an Arrow table typed by its hints: a value that does not fit
    stops the run with one line, as a misfit in the per-job lists does."""
    model = world.truth_models()[0]["id"]
    world.patch_model(model, owned_by=1234)

    code, out, err = cli()

    assert code == 4 and out == ""
    assert err.splitlines() == [
        "openai-ft: error: GET /v1/models answered models with owned_by 1234 (not string)"
    ]
