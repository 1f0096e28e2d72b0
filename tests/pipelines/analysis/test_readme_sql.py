"""The README's analyst SQL runs unchanged on DuckDB and PostgreSQL and answers exactly."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest

from fake_openai import FineTuningWorld, SandboxServer
from pipelines.analysis.sql import run_query
from pipelines.run import load
from tests.helpers import API_KEY, REPO, lifecycle_truth, views_truth

README = REPO / "README.md"
TABLES_DOC = README.parent / "docs" / "TABLES.md"


def analyst_queries() -> list:
    text = README.read_text()
    block = re.search(r"<!-- analyst-sql -->\n```sql\n(.*?)```", text, re.S).group(1)
    return [q.strip() for q in block.split(";\n") if q.strip()]


@pytest.fixture
def demo_world():
    return FineTuningWorld(seed=7, jobs=24)  # the demo's data: some jobs overfit


def _rows(target, query):
    names, rows = run_query(target.pipeline(), query, str(target.duckdb_path))
    return [dict(zip(names, row, strict=True)) for row in rows]


def test_analyst_sql_answers_exactly(target, demo_world):
    queries = analyst_queries()
    assert len(queries) == 3
    with SandboxServer(demo_world, api_key=API_KEY) as sandbox:
        load(api_key=API_KEY, base_url=sandbox.base_url, **target.load_options())
    curves = views_truth.training_curves(demo_world)
    by_job: dict = {}
    for (job_id, _step), row in sorted(curves.items()):
        by_job.setdefault(job_id, []).append(row)

    # loss at the last step
    expected = []
    for job_id in sorted(by_job):
        trained = [r for r in by_job[job_id] if r["train_loss"] is not None]
        if trained:
            last = trained[-1]
            expected.append(
                {
                    "fine_tuning_job_id": job_id,
                    "step": last["step"],
                    "train_loss": last["train_loss"],
                    "valid_loss": last["valid_loss"],
                }
            )
    assert _rows(target, queries[0]) == expected

    # validation loss rose while training loss fell
    expected = []
    for job_id in sorted(by_job):
        points = [
            r for r in by_job[job_id] if r["train_loss"] is not None and r["valid_loss"] is not None
        ]
        if not points:
            continue
        lowest = min(points, key=lambda r: (r["valid_loss"], r["step"]))
        last = points[-1]
        if (
            last["valid_loss"] > 1.05 * lowest["valid_loss"]
            and last["train_loss"] < lowest["train_loss"]
        ):
            expected.append(
                {
                    "fine_tuning_job_id": job_id,
                    "lowest_valid_step": lowest["step"],
                    "last_step": last["step"],
                    "lowest_valid_loss": lowest["valid_loss"],
                    "final_valid_loss": last["valid_loss"],
                    "train_loss_then": lowest["train_loss"],
                    "final_train_loss": last["train_loss"],
                }
            )
    assert expected  # the demo data has overfitting jobs: the query is not vacuous
    assert _rows(target, queries[1]) == expected

    # trained tokens per base model and month
    groups: dict = {}
    for job in demo_world.truth_jobs():
        if job["status"] == "succeeded":
            created = datetime.fromtimestamp(job["created_at"], tz=UTC)
            key = (job["model"], datetime(created.year, created.month, 1))
            jobs, tokens = groups.get(key, (0, 0))
            groups[key] = (jobs + 1, tokens + (job["trained_tokens"] or 0))
    expected = [
        {"model": model, "month": month, "jobs": jobs, "trained_tokens": tokens}
        for (model, month), (jobs, tokens) in sorted(
            groups.items(), key=lambda i: (i[0][1], i[0][0])
        )
    ]
    got = [{**row, "month": row["month"].replace(tzinfo=None)} for row in _rows(target, queries[2])]
    assert got == expected


def example_query(comment: str) -> str:
    """The query of docs/TABLES.md's "Example SQL" section that follows the comment starting
    so."""
    text = TABLES_DOC.read_text()
    block = re.search(r"## Example SQL[^\n]*\n\n```sql\n(.*?)```", text, re.S).group(1)
    (query,) = [q.strip() for q in block.split(";\n") if f"\n-- {comment}" in f"\n{q.strip()}"]
    return query


def test_the_best_checkpoint_example_is_the_view(loaded_target):
    """One definition of "best": the README's example reads the view, and so agrees with it
    on every job."""
    target, world = loaded_target
    query = example_query("best checkpoint per job")
    assert "best_checkpoints" in query and "metrics__" not in query  # no rule restated
    got = _rows(target, query.replace("openai_fine_tuning.", f"{target.dataset}."))
    jobs = {job["id"]: job for job in world.truth_jobs()}
    best = views_truth.best_checkpoints(world)
    assert {row["job_id"]: row for row in got} == {
        job_id: {
            "job_id": job_id,
            "model": jobs[job_id]["model"],
            "status": jobs[job_id]["status"],
            "step_number": chosen["step_number"],
            "rule": chosen["rule"],
            "value": chosen["value"],
            "fine_tuned_model_checkpoint": chosen["fine_tuned_model_checkpoint"],
        }
        for job_id, chosen in best.items()
    }
    created = [jobs[row["job_id"]]["created_at"] for row in got]
    assert created == sorted(created, reverse=True)  # newest first


def test_the_lifecycle_example_lists_the_models_that_stop(loaded_target):
    """README's "Leaving OpenAI fine-tuning" query: the retiring models, soonest first."""
    target, world = loaded_target
    text = README.read_text()
    query = re.search(r"<!-- lifecycle-sql -->\n```sql\n(.*?)```", text, re.S).group(1)
    got = _rows(target, query.strip().rstrip(";"))
    expected = [
        {
            "shutdown_date": row["shutdown_date"],
            "days_left": row["days_left"],
            "model": row["model"],
            "kind": row["kind"],
            "fine_tuning_job_id": row["fine_tuning_job_id"],
            "training_data_archived": row["training_data_archived"],
        }
        for row in sorted(
            lifecycle_truth(world, date.today()),
            key=lambda r: (r["shutdown_date"] or date.max, r["model"]),
        )
        if row["state"] == "retiring"
    ]
    assert expected  # the sandbox has dates ahead: the query is not vacuous
    assert got == expected
