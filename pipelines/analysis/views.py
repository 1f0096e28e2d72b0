"""Analysis views over the loaded tables: `job_summary`, `best_checkpoints`, `training_curves`,
`training_files`, `training_messages` and `model_lifecycle`.

Written once, in DuckDB's SQL, and transpiled with sqlglot to the destination's dialect
(`training_messages` unnests JSON arrays, which no transpiler maps: it is written for DuckDB
and PostgreSQL, and not created elsewhere). The
tables they read can lack columns (a metric no job reported yet) or be missing entirely (a
resource never selected): each table is read through a projection that puts a typed NULL in
place of what is missing, so the views always exist and keep one shape.

Longer than the other modules on purpose: the SQL of every view, and the projections that
let each read tables a run may not have made yet, belong together (`job_summary` and
`model_lifecycle` inline the others' SQL).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Set, Tuple

import dlt
import sqlglot

# table -> (column, type) read by the views; absent ones become typed NULLs
COLUMNS: Dict[str, Tuple[Tuple[str, str], ...]] = {
    "jobs": (
        ("id", "VARCHAR"),
        ("model", "VARCHAR"),
        ("method", "JSON"),
        ("status", "VARCHAR"),
        ("created_at", "TIMESTAMPTZ"),
        ("finished_at", "TIMESTAMPTZ"),
        ("trained_tokens", "BIGINT"),
        ("fine_tuned_model", "VARCHAR"),
        ("training_file", "VARCHAR"),
        ("validation_file", "VARCHAR"),
    ),
    "checkpoints": (
        ("id", "VARCHAR"),
        ("fine_tuning_job_id", "VARCHAR"),
        ("step_number", "BIGINT"),
        ("fine_tuned_model_checkpoint", "VARCHAR"),
        ("metrics__full_valid_loss", "DOUBLE"),
        ("metrics__valid_loss", "DOUBLE"),
        ("metrics__train_loss", "DOUBLE"),
        ("metrics__valid_reward_mean", "DOUBLE"),
    ),
    "step_metrics": (
        ("id", "VARCHAR"),
        ("fine_tuning_job_id", "VARCHAR"),
        ("created_at", "TIMESTAMPTZ"),
        ("step", "BIGINT"),
        ("train_loss", "DOUBLE"),
        ("train_mean_token_accuracy", "DOUBLE"),
        ("valid_loss", "DOUBLE"),
        ("valid_mean_token_accuracy", "DOUBLE"),
        ("full_valid_loss", "DOUBLE"),
        ("full_valid_mean_token_accuracy", "DOUBLE"),
        ("scores__train_reward_mean", "DOUBLE"),
        ("scores__valid_reward_mean", "DOUBLE"),
    ),
    "results": (
        ("file_id", "VARCHAR"),
        ("fine_tuning_job_id", "VARCHAR"),
        ("step", "BIGINT"),
        ("train_loss", "DOUBLE"),
        ("train_accuracy", "DOUBLE"),
        ("valid_loss", "DOUBLE"),
        ("valid_mean_token_accuracy", "DOUBLE"),
        ("full_valid_loss", "DOUBLE"),
        ("full_valid_mean_token_accuracy", "DOUBLE"),
        ("train_reward_mean", "DOUBLE"),
        ("valid_reward_mean", "DOUBLE"),
    ),
    "files": (
        ("id", "VARCHAR"),
        ("bytes", "BIGINT"),
        ("sha256", "VARCHAR"),
        ("lines", "BIGINT"),
    ),
    "training_examples": (
        ("file_id", "VARCHAR"),
        ("line", "BIGINT"),
        ("raw", "VARCHAR"),
        ("valid_json", "BOOLEAN"),
        ("kind", "VARCHAR"),
    ),
    "models": (
        ("id", "VARCHAR"),
        ("shutdown_date", "DATE"),
        ("last_seen_at", "TIMESTAMPTZ"),
    ),
}

# Per job and step: events first, the results CSV where events lack the step or a value.
TRAINING_CURVES = """
WITH events_by_step AS (
    SELECT *, row_number() OVER (
        PARTITION BY fine_tuning_job_id, step ORDER BY created_at DESC, id DESC) AS pick
    FROM {step_metrics} AS m
    WHERE step IS NOT NULL
), results_by_step AS (
    SELECT *, row_number() OVER (
        PARTITION BY fine_tuning_job_id, step ORDER BY file_id DESC) AS pick
    FROM {results} AS r
    WHERE step IS NOT NULL
), e AS (
    SELECT * FROM events_by_step WHERE pick = 1
), r AS (
    SELECT * FROM results_by_step WHERE pick = 1
)
SELECT
    coalesce(e.fine_tuning_job_id, r.fine_tuning_job_id) AS fine_tuning_job_id,
    coalesce(e.step, r.step) AS step,
    coalesce(e.train_loss, r.train_loss) AS train_loss,
    coalesce(e.train_mean_token_accuracy, r.train_accuracy) AS train_mean_token_accuracy,
    coalesce(e.valid_loss, r.valid_loss) AS valid_loss,
    coalesce(e.valid_mean_token_accuracy, r.valid_mean_token_accuracy)
        AS valid_mean_token_accuracy,
    coalesce(e.full_valid_loss, r.full_valid_loss) AS full_valid_loss,
    coalesce(e.full_valid_mean_token_accuracy, r.full_valid_mean_token_accuracy)
        AS full_valid_mean_token_accuracy,
    coalesce(e.scores__train_reward_mean, r.train_reward_mean) AS train_reward_mean,
    coalesce(e.scores__valid_reward_mean, r.valid_reward_mean) AS valid_reward_mean,
    CASE WHEN e.step IS NULL THEN 'results' ELSE 'events' END AS source
FROM e FULL OUTER JOIN r
    ON e.fine_tuning_job_id = r.fine_tuning_job_id AND e.step = r.step
"""

# Per job: the rule comes from the metrics its checkpoints carry, in this order of preference.
BEST_CHECKPOINTS = """
WITH checkpoint_metrics AS (
    SELECT
        c.*,
        coalesce(j.method ->> 'type', 'supervised') AS method,
        max(c.metrics__valid_reward_mean) OVER job_window AS any_reward,
        max(c.metrics__full_valid_loss) OVER job_window AS any_full_valid,
        max(c.metrics__valid_loss) OVER job_window AS any_valid,
        max(c.metrics__train_loss) OVER job_window AS any_train
    FROM {checkpoints} AS c
    LEFT JOIN {jobs} AS j ON j.id = c.fine_tuning_job_id
    WINDOW job_window AS (PARTITION BY c.fine_tuning_job_id)
), ruled AS (
    SELECT *,
        CASE
            WHEN method = 'reinforcement' AND any_reward IS NOT NULL THEN 'valid_reward_mean'
            WHEN any_full_valid IS NOT NULL THEN 'full_valid_loss'
            WHEN any_valid IS NOT NULL THEN 'valid_loss'
            WHEN any_train IS NOT NULL THEN 'train_loss'
        END AS rule
    FROM checkpoint_metrics
), valued AS (
    SELECT *,
        CASE rule
            WHEN 'valid_reward_mean' THEN metrics__valid_reward_mean
            WHEN 'full_valid_loss' THEN metrics__full_valid_loss
            WHEN 'valid_loss' THEN metrics__valid_loss
            WHEN 'train_loss' THEN metrics__train_loss
        END AS value
    FROM ruled
), ranked AS (
    SELECT *, row_number() OVER (
        PARTITION BY fine_tuning_job_id
        ORDER BY CASE WHEN rule = 'valid_reward_mean' THEN -value ELSE value END,
                 step_number DESC, id
    ) AS rank
    FROM valued
    WHERE value IS NOT NULL
)
SELECT
    fine_tuning_job_id,
    id AS checkpoint_id,
    fine_tuned_model_checkpoint,
    step_number,
    rule,
    value
FROM ranked
WHERE rank = 1
"""

JOB_SUMMARY = """
WITH curves AS ({training_curves}), best AS ({best_checkpoints}),
steps AS (
    SELECT fine_tuning_job_id, max(step) AS steps FROM curves GROUP BY fine_tuning_job_id
), last_train AS (
    SELECT fine_tuning_job_id, train_loss, row_number() OVER (
        PARTITION BY fine_tuning_job_id ORDER BY step DESC) AS pick
    FROM curves WHERE train_loss IS NOT NULL
), last_valid AS (
    SELECT fine_tuning_job_id, valid_loss, row_number() OVER (
        PARTITION BY fine_tuning_job_id ORDER BY step DESC) AS pick
    FROM curves WHERE valid_loss IS NOT NULL
), checkpoint_counts AS (
    SELECT fine_tuning_job_id, count(*) AS checkpoints
    FROM {checkpoints} AS c GROUP BY fine_tuning_job_id
)
SELECT
    j.id,
    j.model,
    coalesce(j.method ->> 'type', 'supervised') AS method,
    j.status,
    j.created_at,
    j.finished_at,
    CAST(epoch(j.finished_at) - epoch(j.created_at) AS BIGINT) AS duration_s,
    j.trained_tokens,
    j.fine_tuned_model,
    s.steps,
    coalesce(k.checkpoints, 0) AS checkpoints,
    t.train_loss AS final_train_loss,
    v.valid_loss AS final_valid_loss,
    b.checkpoint_id AS best_checkpoint_id,
    b.fine_tuned_model_checkpoint AS best_checkpoint_model,
    b.rule AS best_metric,
    b.value AS best_value
FROM {jobs} AS j
LEFT JOIN steps AS s ON s.fine_tuning_job_id = j.id
LEFT JOIN checkpoint_counts AS k ON k.fine_tuning_job_id = j.id
LEFT JOIN last_train AS t ON t.fine_tuning_job_id = j.id AND t.pick = 1
LEFT JOIN last_valid AS v ON v.fine_tuning_job_id = j.id AND v.pick = 1
LEFT JOIN best AS b ON b.fine_tuning_job_id = j.id
"""

# Per job and training or validation file: how much of it the archive holds.
TRAINING_FILES = """
WITH roles AS (
    SELECT id AS fine_tuning_job_id, training_file AS file_id, 'training' AS role
    FROM {jobs} AS j WHERE training_file IS NOT NULL
    UNION ALL
    SELECT id, validation_file, 'validation' FROM {jobs} AS j WHERE validation_file IS NOT NULL
), counts AS (
    SELECT file_id,
        count(*) AS archived_lines,
        count(*) FILTER (WHERE valid_json) AS examples,
        count(*) FILTER (WHERE NOT valid_json) AS invalid_lines
    FROM {training_examples} AS t GROUP BY file_id
)
SELECT
    r.fine_tuning_job_id,
    r.file_id,
    r.role,
    coalesce(c.examples, 0) AS examples,
    coalesce(c.invalid_lines, 0) AS invalid_lines,
    f.bytes,
    coalesce(f.sha256 IS NOT NULL AND f.lines = coalesce(c.archived_lines, 0), FALSE)
        AS complete
FROM roles AS r
LEFT JOIN {files} AS f ON f.id = r.file_id
LEFT JOIN counts AS c ON c.file_id = r.file_id
"""

# One row per fine-tuned model the archive knows (job results and checkpoints), with when it
# stops serving: its own date when the models list gives one, else its root base model's.
MODEL_LIFECYCLE = """
WITH known AS (
    SELECT fine_tuned_model AS model, 'fine-tuned' AS kind, id AS fine_tuning_job_id,
        model AS base_model
    FROM {jobs} AS j WHERE fine_tuned_model IS NOT NULL
    UNION ALL
    SELECT c.fine_tuned_model_checkpoint, 'checkpoint', c.fine_tuning_job_id, j.model
    FROM {checkpoints} AS c LEFT JOIN {jobs} AS j ON j.id = c.fine_tuning_job_id
    WHERE c.fine_tuned_model_checkpoint IS NOT NULL
), unique_models AS (
    SELECT *, row_number() OVER (
        PARTITION BY model ORDER BY kind DESC, fine_tuning_job_id) AS pick
    FROM known
), rooted AS (
    SELECT model, kind, fine_tuning_job_id, base_model,
        CASE
            WHEN model LIKE 'ft:%' THEN split_part(model, ':', 2)
            WHEN base_model LIKE 'ft:%' THEN split_part(base_model, ':', 2)
            ELSE base_model
        END AS root_model
    FROM unique_models WHERE pick = 1
), latest AS (
    SELECT max(last_seen_at) AS listed_at FROM {models} AS m
), files AS ({training_files}),
archived AS (
    SELECT fine_tuning_job_id, bool_and(complete) AS complete
    FROM files GROUP BY fine_tuning_job_id
), dated AS (
    SELECT r.*, own.shutdown_date AS own_date, own.last_seen_at AS seen_at,
        root.shutdown_date AS root_date, latest.listed_at,
        coalesce(a.complete, FALSE) AS training_data_archived
    FROM rooted AS r
    CROSS JOIN latest
    LEFT JOIN {models} AS own ON own.id = r.model
    LEFT JOIN {models} AS root ON root.id = r.root_model
    LEFT JOIN archived AS a ON a.fine_tuning_job_id = r.fine_tuning_job_id
)
SELECT
    model,
    kind,
    fine_tuning_job_id,
    base_model,
    root_model,
    coalesce(own_date, root_date) AS shutdown_date,
    CASE
        WHEN own_date IS NOT NULL THEN 'model'
        WHEN root_date IS NOT NULL THEN 'root model'
    END AS date_from,
    coalesce(own_date, root_date) - current_date AS days_left,
    CASE
        WHEN listed_at IS NULL THEN 'unknown'
        WHEN coalesce(own_date, root_date) < current_date THEN 'shut down'
        WHEN seen_at IS NULL OR seen_at < listed_at THEN 'not listed'
        WHEN coalesce(own_date, root_date) IS NOT NULL THEN 'retiring'
        ELSE 'serving'
    END AS state,
    training_data_archived
FROM dated
"""

# One row per message of an example: `part` says which list it is in (`messages` for chat and
# reinforcement examples; `input`, `preferred_output`, `non_preferred_output` for DPO ones).
# JSON arrays unnest differently in each engine: one text per dialect.
_MESSAGE_PARTS = """
WITH examples AS (
    SELECT file_id, line, kind, CASE WHEN valid_json THEN CAST(raw AS JSON) END AS doc
    FROM {training_examples} AS t WHERE valid_json AND kind IS NOT NULL
), parts AS (
    SELECT file_id, line, 'messages' AS part, doc -> 'messages' AS list
    FROM examples WHERE kind <> 'dpo'
    UNION ALL
    SELECT file_id, line, 'input', doc -> 'input' -> 'messages' FROM examples WHERE kind = 'dpo'
    UNION ALL
    SELECT file_id, line, 'preferred_output', doc -> 'preferred_output'
    FROM examples WHERE kind = 'dpo'
    UNION ALL
    SELECT file_id, line, 'non_preferred_output', doc -> 'non_preferred_output'
    FROM examples WHERE kind = 'dpo'
)"""
TRAINING_MESSAGES = {
    "duckdb": _MESSAGE_PARTS
    + """
SELECT
    p.file_id,
    p.line,
    p.part,
    CAST(m.key AS BIGINT) + 1 AS position,
    m.value ->> 'role' AS role,
    m.value ->> 'content' AS content,
    CASE WHEN json_type(m.value -> 'weight') IN ('UBIGINT', 'BIGINT', 'DOUBLE')
        THEN CAST(m.value ->> 'weight' AS DOUBLE) END AS weight,
    coalesce(json_type(m.value -> 'tool_calls') = 'ARRAY', FALSE) AS has_tool_calls
FROM parts AS p,
    json_each(CASE WHEN json_type(p.list) = 'ARRAY' THEN p.list ELSE CAST('[]' AS JSON) END) AS m
WHERE json_type(m.value) = 'OBJECT'
""",
    "postgres": _MESSAGE_PARTS
    + """
SELECT
    p.file_id,
    p.line,
    p.part,
    m.position,
    m.value ->> 'role' AS role,
    m.value ->> 'content' AS content,
    CASE WHEN json_typeof(m.value -> 'weight') = 'number'
        THEN CAST(m.value ->> 'weight' AS DOUBLE PRECISION) END AS weight,
    coalesce(json_typeof(m.value -> 'tool_calls') = 'array', FALSE) AS has_tool_calls
FROM parts AS p
CROSS JOIN LATERAL json_array_elements(
    CASE WHEN json_typeof(p.list) = 'array' THEN p.list ELSE CAST('[]' AS JSON) END
) WITH ORDINALITY AS m(value, position)
WHERE json_typeof(m.value) = 'object'
""",
}

VIEWS = (
    "training_curves",
    "best_checkpoints",
    "job_summary",
    "training_files",
    "model_lifecycle",
    "training_messages",
)


def _projection(table: str, qualified: str, present: Set[str]) -> str:
    """The table's view columns, a typed NULL for each one it lacks; no rows if it is absent."""
    columns = [
        # JSON is cast even when present: PostgreSQL has json or jsonb by how it was loaded
        (name if kind != "JSON" else f"CAST({name} AS JSON) AS {name}")
        if name in present
        else f"CAST(NULL AS {kind}) AS {name}"
        for name, kind in COLUMNS[table]
    ]
    source = f"FROM {qualified}" if present else "WHERE 1 = 0"
    return f"(SELECT {', '.join(columns)} {source})"


def view_queries(tables: Mapping[str, Iterable[str]], qualify: Mapping[str, str]) -> Dict[str, str]:
    """The SELECT of every view, in DuckDB's dialect.

    Args:
        tables: Column names per table as the destination has them (absent tables left out).
        qualify: Table name to its qualified name in the destination.
    """
    sources = {
        table: _projection(table, qualify[table], set(tables.get(table, ()))) for table in COLUMNS
    }
    curves = TRAINING_CURVES.format(**sources)
    best = BEST_CHECKPOINTS.format(**sources)
    summary = JOB_SUMMARY.format(training_curves=curves, best_checkpoints=best, **sources)
    files = TRAINING_FILES.format(**sources)
    lifecycle = MODEL_LIFECYCLE.format(training_files=files, **sources)
    return {
        "training_curves": curves,
        "best_checkpoints": best,
        "job_summary": summary,
        "training_files": files,
        "model_lifecycle": lifecycle,
    }


def view_statements(
    tables: Mapping[str, Iterable[str]], qualify: Mapping[str, str], dialect: str
) -> List[str]:
    """DROP and CREATE statements of every view, in the destination's dialect (without
    `training_messages` where it is not written for that dialect)."""
    statements = []
    for name, query in view_queries(tables, qualify).items():
        view = qualify[name]
        statements.append(f"DROP VIEW IF EXISTS {view}")
        create = f"CREATE VIEW {view} AS {query}"
        if dialect != "duckdb":  # written in DuckDB's dialect
            create = sqlglot.transpile(create, read="duckdb", write=dialect)[0]
        statements.append(create)
    messages = TRAINING_MESSAGES.get(dialect)
    if messages is not None:
        source = _projection(
            "training_examples",
            qualify["training_examples"],
            set(tables.get("training_examples", ())),
        )
        view = qualify["training_messages"]
        statements.append(f"DROP VIEW IF EXISTS {view}")
        statements.append(f"CREATE VIEW {view} AS {messages.format(training_examples=source)}")
    return statements


VIEWS_FINGERPRINT = "views.sha256"  # in the pipeline's working dir: what the views were made of


def create_views(pipeline: dlt.Pipeline) -> List[str]:
    """(Re)creates the views in the pipeline's dataset when their definition changed (a new
    column or table, a new version); returns their names.

    The definition follows the destination's columns, so a run that adds none (a no-change
    rerun) finds the same statements: their SHA-256, kept in the pipeline's working dir, then
    matches and, while every view still exists, nothing is executed.

    Nothing happens on destinations without a lasting SQL schema: plain `filesystem`, whose
    SQL client is an in-memory DuckDB over the files (views made there vanish with the
    process), and destinations with no SQL client at all.
    """
    from dlt.common.destination.exceptions import SqlClientNotAvailable

    if pipeline.destination.destination_name == "filesystem":
        return []
    try:
        sql_client = pipeline.sql_client()
    except SqlClientNotAvailable:
        return []
    with sql_client as client:
        dialect = client.capabilities.sqlglot_dialect or "duckdb"
        names = [*COLUMNS, *VIEWS]
        qualify = {name: client.make_qualified_table_name(name) for name in names}
        rows = client.execute_sql(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = %s",
            client.dataset_name,
        )
        tables: Dict[str, Set[str]] = {}
        for table, column in rows or ():
            tables.setdefault(table, set()).add(column)
        statements = view_statements(tables, qualify, dialect)
        made = [name for name in VIEWS if any(qualify[name] in s for s in statements)]
        fingerprint = hashlib.sha256("\n".join(statements).encode()).hexdigest()
        stored = Path(pipeline.working_dir) / VIEWS_FINGERPRINT
        if all(name in tables for name in made) and _read(stored) == fingerprint:
            return made
        for statement in statements:
            client.execute_sql(statement)
    stored.write_text(fingerprint)
    return made


def _read(path: Path) -> Optional[str]:
    try:
        return path.read_text().strip()
    except OSError:
        return None


SHUTDOWN_HORIZON_DAYS = 90  # the summary names the models that stop serving within this


@dataclass
class Shutdowns:
    """Fine-tuned models (checkpoint models included) that stop serving soon."""

    within_days: int
    models: int  # stopping within `within_days`
    checkpoints: int  # of which checkpoint models
    first_date: Optional[str]  # YYYY-MM-DD
    without_training_data: int  # of `models`, whose job's training data is not all archived


def upcoming_shutdowns(pipeline: dlt.Pipeline, views: List[str]) -> Optional[Shutdowns]:
    """The fine-tuned models that stop serving within 90 days (view `model_lifecycle`);
    None where the views are not made."""
    if "model_lifecycle" not in views:
        return None
    with pipeline.sql_client() as client:
        view = client.make_qualified_table_name("model_lifecycle")
        result = client.execute_sql(
            "SELECT count(*), count(CASE WHEN kind = 'checkpoint' THEN 1 END), min(shutdown_date),"
            " count(CASE WHEN NOT training_data_archived THEN 1 END)"
            f" FROM {view} WHERE state = 'retiring' AND days_left <= %s",
            SHUTDOWN_HORIZON_DAYS,
        )
    models, checkpoints, first, without = result[0] if result else (0, 0, None, 0)
    return Shutdowns(
        within_days=SHUTDOWN_HORIZON_DAYS,
        models=int(models or 0),
        checkpoints=int(checkpoints or 0),
        first_date=first.isoformat() if first is not None else None,
        without_training_data=int(without or 0),
    )
