"""SQL over the loaded tables, used by the demo and shown in the README."""

# Per job: the checkpoint with the lowest full_valid_loss, or, for jobs that never ran a full
# validation, the lowest train_loss. Jobs without checkpoints have no row.
BEST_CHECKPOINT_SQL = """
SELECT
    j.id AS job_id,
    j.model,
    j.status,
    c.step_number,
    round(c.metrics__full_valid_loss, 4) AS full_valid_loss,
    round(c.metrics__train_loss, 4) AS train_loss
FROM {dataset}.checkpoints AS c
JOIN {dataset}.jobs AS j ON j.id = c.fine_tuning_job_id
QUALIFY row_number() OVER (
    PARTITION BY c.fine_tuning_job_id
    ORDER BY c.metrics__full_valid_loss ASC NULLS LAST, c.metrics__train_loss ASC, c.id
) = 1
ORDER BY j.created_at DESC, j.id
"""


def best_checkpoint_sql(dataset: str) -> str:
    """The best-checkpoint query for a dataset name (a SQL identifier, quoted)."""
    return BEST_CHECKPOINT_SQL.format(dataset='"' + dataset.replace('"', '""') + '"')


# Every training step of the most recent job with a training loss: its loss curve.
LOSS_CURVE_SQL = """
SELECT step, train_loss, valid_loss, full_valid_loss
FROM {dataset}.step_metrics
WHERE fine_tuning_job_id = (
    SELECT fine_tuning_job_id FROM {dataset}.step_metrics
    WHERE train_loss IS NOT NULL ORDER BY created_at DESC, id LIMIT 1
)
ORDER BY step
"""


def loss_curve_sql(dataset: str) -> str:
    """The loss curve query for a dataset name (a SQL identifier, quoted)."""
    return LOSS_CURVE_SQL.format(dataset='"' + dataset.replace('"', '""') + '"')
