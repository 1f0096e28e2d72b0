"""What the analysis views must hold, computed from the sandbox's truth in plain Python
(independently of the SQL under test)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from fake_openai import FineTuningWorld

CURVE_COLUMNS = (
    "train_loss",
    "train_mean_token_accuracy",
    "valid_loss",
    "valid_mean_token_accuracy",
    "full_valid_loss",
    "full_valid_mean_token_accuracy",
    "train_reward_mean",
    "valid_reward_mean",
)
# training_curves column -> (step_metrics path in the event data, results CSV column)
CURVE_SOURCES = {
    "train_loss": (("train_loss",), "train_loss"),
    "train_mean_token_accuracy": (("train_mean_token_accuracy",), "train_accuracy"),
    "valid_loss": (("valid_loss",), "valid_loss"),
    "valid_mean_token_accuracy": (("valid_mean_token_accuracy",), "valid_mean_token_accuracy"),
    "full_valid_loss": (("full_valid_loss",), "full_valid_loss"),
    "full_valid_mean_token_accuracy": (
        ("full_valid_mean_token_accuracy",),
        "full_valid_mean_token_accuracy",
    ),
    "train_reward_mean": (("scores", "train_reward_mean"), "train_reward_mean"),
    "valid_reward_mean": (("scores", "valid_reward_mean"), "valid_reward_mean"),
}
TERMINAL = ("succeeded", "failed", "cancelled")


def _number(value: Any) -> Optional[float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _dig(data: Dict[str, Any], path: Tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def training_curves(
    world: FineTuningWorld, with_events: bool = True
) -> Dict[Tuple[str, int], Dict[str, Any]]:
    """Per (job, step); `with_events=False`: what the results CSVs alone give."""
    events: Dict[Tuple[str, int], Dict[str, Any]] = {}
    for job_id, job_events in world.truth_events().items() if with_events else ():
        for event in job_events:  # newest first: the first one of a step wins
            data = event.get("data")
            if event.get("type") != "metrics" or not isinstance(data, dict):
                continue
            step = data.get("step")
            if isinstance(step, (int, float)) and float(step).is_integer():
                events.setdefault((job_id, int(step)), data)
    results: Dict[Tuple[str, int], Dict[str, Any]] = {}
    for row in sorted(world.truth_results(), key=lambda r: r["file_id"], reverse=True):
        results.setdefault((row["fine_tuning_job_id"], row["step"]), row)
    curves = {}
    for key in set(events) | set(results):
        event, result = events.get(key, {}), results.get(key, {})
        row: Dict[str, Any] = {"fine_tuning_job_id": key[0], "step": key[1]}
        for column, (path, csv_column) in CURVE_SOURCES.items():
            value = _number(_dig(event, path))
            row[column] = value if value is not None else _number(result.get(csv_column))
        row["source"] = "events" if key in events else "results"
        curves[key] = row
    return curves


def best_checkpoints(world: FineTuningWorld) -> Dict[str, Dict[str, Any]]:
    methods = {j["id"]: (j.get("method") or {}).get("type") for j in world.truth_jobs()}
    by_job: Dict[str, List[Dict[str, Any]]] = {}
    for checkpoint in world.truth_checkpoints():
        by_job.setdefault(checkpoint["fine_tuning_job_id"], []).append(checkpoint)
    best = {}
    for job_id, checkpoints in by_job.items():

        def metric(c: Dict[str, Any], name: str) -> Optional[float]:
            return _number(c["metrics"].get(name))

        rules = ["full_valid_loss", "valid_loss", "train_loss"]
        if methods.get(job_id) == "reinforcement":
            rules.insert(0, "valid_reward_mean")
        rule = next((r for r in rules if any(metric(c, r) is not None for c in checkpoints)), None)
        if rule is None:
            continue
        sign = -1 if rule == "valid_reward_mean" else 1
        candidates = [c for c in checkpoints if metric(c, rule) is not None]
        # best value, then the latest step, then the smallest id
        candidates.sort(key=lambda c: c["id"])
        candidates.sort(key=lambda c: c["step_number"], reverse=True)
        chosen = min(candidates, key=lambda c: sign * metric(c, rule))
        best[job_id] = {
            "fine_tuning_job_id": job_id,
            "checkpoint_id": chosen["id"],
            "fine_tuned_model_checkpoint": chosen["fine_tuned_model_checkpoint"],
            "step_number": chosen["step_number"],
            "rule": rule,
            "value": metric(chosen, rule),
        }
    return best


def job_summary(world: FineTuningWorld, with_events: bool = True) -> Dict[str, Dict[str, Any]]:
    curves = training_curves(world, with_events)
    best = best_checkpoints(world)
    counts: Dict[str, int] = {}
    for checkpoint in world.truth_checkpoints():
        counts[checkpoint["fine_tuning_job_id"]] = (
            counts.get(checkpoint["fine_tuning_job_id"], 0) + 1
        )
    summary = {}
    for job in world.truth_jobs():
        job_id = job["id"]
        rows = sorted((r for (j, _), r in curves.items() if j == job_id), key=lambda r: r["step"])
        trained = [r for r in rows if r["train_loss"] is not None]
        validated = [r for r in rows if r["valid_loss"] is not None]
        chosen = best.get(job_id, {})
        finished = job.get("finished_at")
        summary[job_id] = {
            "id": job_id,
            "model": job["model"],
            "method": (job.get("method") or {}).get("type") or "supervised",
            "status": job["status"],
            "created_at": job["created_at"],
            "finished_at": finished,
            "duration_s": None if finished is None else finished - job["created_at"],
            "trained_tokens": job.get("trained_tokens"),
            "fine_tuned_model": job.get("fine_tuned_model"),
            "steps": rows[-1]["step"] if rows else None,
            "checkpoints": counts.get(job_id, 0),
            "final_train_loss": trained[-1]["train_loss"] if trained else None,
            "final_valid_loss": validated[-1]["valid_loss"] if validated else None,
            "best_checkpoint_id": chosen.get("checkpoint_id"),
            "best_checkpoint_model": chosen.get("fine_tuned_model_checkpoint"),
            "best_metric": chosen.get("rule"),
            "best_value": chosen.get("value"),
        }
    return summary
