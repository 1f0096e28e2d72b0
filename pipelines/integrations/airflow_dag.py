"""Airflow recipe: load OpenAI fine-tuning history every hour with dlt's `PipelineTasksGroup`.

In your DAGs folder, a file with `from pipelines.integrations.airflow_dag import dag` (or a
copy of this module); the workers need this project installed (`pip install .` from a clone
of it) and Airflow 3 (written and tested with 3.3).

Settings, from the environment of the scheduler and the workers (read at parse time; none is
secret, and environment variables cost nothing to read when the scheduler parses the file):
  OPENAI_FT_DESTINATION   a dlt destination (default duckdb); its credentials as dlt reads
                          them, e.g. DESTINATION__MOTHERDUCK__CREDENTIALS (docs/ORCHESTRATION.md)
  OPENAI_FT_DUCKDB_PATH   the DuckDB file, for duckdb (default /opt/airflow/data/openai_ft.duckdb)
  OPENAI_FT_DATASET       dataset (schema) name (default openai_fine_tuning)
  OPENAI_BASE_URL, OPENAI_ORG_ID, OPENAI_PROJECT_ID   the API identity (optional)
The API key is read when the task runs, never at parse time: the password of the Airflow
connection `openai_default` (OPENAI_FT_CONN_ID names another), else dlt's own lookup:
OPENAI_API_KEY, or `[sources.openai_fine_tuning] api_key` in the Airflow variable
`dlt_secrets_toml`, which dlt reads when it runs under Airflow.
"""

import os
from datetime import datetime, timedelta
from typing import Any, Dict, Optional

from airflow.sdk import DAG, BaseHook, task
from dlt.helpers.airflow_helper import PipelineTasksGroup

from pipelines.run.destinations import (
    existing_pipeline,
    fastest_file_format,
    make_pipeline,
    refresh_views,
)
from pipelines.run.prepare import prepare_source
from pipelines.run.targets import default_pipeline_name
from sources.openai_fine_tuning import RunStats, StateOwner, openai_fine_tuning

DESTINATION = os.environ.get("OPENAI_FT_DESTINATION", "duckdb")
DUCKDB_PATH = os.environ.get("OPENAI_FT_DUCKDB_PATH", "/opt/airflow/data/openai_ft.duckdb")
DATASET = os.environ.get("OPENAI_FT_DATASET", "openai_fine_tuning")
CONN_ID = os.environ.get("OPENAI_FT_CONN_ID", "openai_default")
SCHEDULE = "@hourly"


def api_options() -> Dict[str, Optional[str]]:
    """The API identity (not the key), the same at parse time and when the task runs."""
    return {
        "base_url": os.environ.get("OPENAI_BASE_URL"),
        "organization": os.environ.get("OPENAI_ORG_ID"),
        "project": os.environ.get("OPENAI_PROJECT_ID"),
    }


def target_of(placeholder_key: str) -> StateOwner:
    """The target this DAG loads (destination and API identity), as `openai-ft load` names
    it: the source computes the API identity, so this builds one (no request is made)."""
    return prepare_source(
        DESTINATION, DUCKDB_PATH, DATASET, api_key=placeholder_key, **api_options()
    ).owner


def api_key() -> Optional[str]:
    """The key from the Airflow connection; None lets dlt look it up."""
    try:
        return BaseHook.get_connection(CONN_ID).password or None
    except Exception:  # no such connection (AirflowNotFoundException): dlt's lookup then
        return None


# the placeholder key only lets the source compute the API identity at parse time
OWNER = target_of("parse-time-placeholder")
# one pipeline (and state) per target, the name `openai-ft load` gives the same target
PIPELINE_NAME = default_pipeline_name(OWNER.digest or "")


def fine_tuning_source() -> Any:
    """Built when the task runs, so the key is read then; a state recorded for another
    target (a renamed file or dataset, another project) is refused."""
    return openai_fine_tuning(
        api_key=api_key(), stats=RunStats(), state_owner=OWNER, **api_options()
    )


with DAG(
    dag_id="openai_fine_tuning",
    schedule=SCHEDULE,
    start_date=datetime(2025, 1, 1),
    catchup=False,  # each run loads everything new: there is nothing to backfill
    max_active_runs=1,  # two runs must not write one target (and its state) at once
    default_args={
        "retries": 2,  # a 5xx storm or a locked DuckDB file; the next run also catches up
        "retry_delay": timedelta(minutes=5),
        "retry_exponential_backoff": True,
        "execution_timeout": timedelta(minutes=50),  # ends before the next hourly run
    },
    tags=["dlt", "openai"],
) as dag:
    # before the pipeline: the group points dlt's data dir at a fresh folder per worker. Each
    # run starts from an empty working dir and dlt restores the state from the destination.
    # Named after the pipeline: a worker whose settings name another target finds no task.
    tasks = PipelineTasksGroup(PIPELINE_NAME, use_data_folder=False, wipe_local_data=True)
    pipeline = make_pipeline(DESTINATION, DUCKDB_PATH, DATASET, pipeline_name=PIPELINE_NAME)
    # decompose="none": ONE task for the whole source. The per-job ledger that makes reruns
    # incremental lives in one source state, `jobs_ledger`, which every resource reads and
    # advances (and the five resources share one hidden parent, `jobs_to_read`, so dlt finds
    # a single component anyway). Tasks per resource would each load their own copy of that
    # state and race: the last one to load would drop what the others recorded.
    load_tasks = tasks.add_run(
        pipeline,
        fine_tuning_source,  # a callable: evaluated in the task, not when the DAG is parsed
        decompose="none",
        loader_file_format=fastest_file_format(pipeline),
    )

    @task(task_id="refresh_views")
    def refresh() -> list:
        """The analysis views (job_summary, best_checkpoints, training_curves): dlt's run in
        the group ends at the load, and `openai-ft load` makes them after it."""
        return refresh_views(existing_pipeline(DESTINATION, DUCKDB_PATH, DATASET))

    load_tasks[-1] >> refresh()
