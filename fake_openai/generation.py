"""How a seed lays out a world's history: which jobs exist, in which status, trained how.

The layout guarantees what tests need from any default world (every status, every method, a
job with more than 1,000 steps, a shared training file, one deleted file, one results file in
the older plain-CSV encoding) while the rest is drawn from the seed.
"""

from __future__ import annotations

import math
from random import Random
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

if TYPE_CHECKING:
    from fake_openai.world import FineTuningWorld

__all__ = ["Random", "generate"]

TERMINAL_STATUSES = ("succeeded", "failed", "cancelled")
ACTIVE_STATUSES = ("validating_files", "queued", "running")
# the oldest generated jobs, before the drawn ones: every status, then a second succeeded job
FIRST_STATUSES = TERMINAL_STATUSES + ACTIVE_STATUSES + ("succeeded",)
BASE_MODELS = ("gpt-4o-mini-2024-07-18", "gpt-4.1-mini-2025-04-14", "gpt-4o-2024-08-06")
REINFORCEMENT_MODEL = "o4-mini-2025-04-16"  # reinforcement fine-tuning runs on reasoning models
EXACT_MATCH = {
    "type": "string_check",
    "name": "exact_match",
    "input": "{{sample.output_text}}",
    "reference": "{{item.correct_answer}}",
    "operation": "eq",
}


def hyperparameters(rng: Random) -> Dict[str, Any]:
    return {
        "batch_size": rng.choice((1, 4, 8, 16)),
        "learning_rate_multiplier": rng.choice((0.5, 1.0, 1.8, 2.0)),
        "n_epochs": rng.choice((2, 3, 4)),
    }


def method(
    rng: Random, kind: str, shared: Dict[str, Any]
) -> Tuple[Dict[str, Any], Tuple[str, ...]]:
    """(the job's `method` object, its grader names: top-level first, then sub-graders)."""
    own = dict(shared)
    if kind == "dpo":
        own["beta"] = rng.choice((0.1, 0.2, 0.5))
        return {"type": "dpo", "dpo": {"hyperparameters": own}}, ()
    if kind == "reinforcement":
        own.update(
            reasoning_effort=rng.choice(("low", "medium", "high")),
            compute_multiplier=1.0,
            eval_interval=1,
            eval_samples=rng.choice((1, 4)),
        )
        grader: Dict[str, Any] = dict(EXACT_MATCH)
        names: Tuple[str, ...] = ("exact_match",)
        if rng.random() < 0.5:  # the spec's MultiGrader wraps one grader
            inner = {**EXACT_MATCH, "name": "loose_match", "operation": "ilike"}
            grader = {
                "type": "multi",
                "name": "combined",
                "graders": inner,
                "calculate_output": "loose_match",
            }
            names = ("combined", "loose_match")
        method_record = {
            "type": "reinforcement",
            "reinforcement": {"grader": grader, "hyperparameters": own},
        }
        return method_record, names
    return {"type": "supervised", "supervised": {"hyperparameters": own}}, ()


def base_model(rng: Random, kind: str) -> str:
    return REINFORCEMENT_MODEL if kind == "reinforcement" else rng.choice(BASE_MODELS)


def metadata(rng: Random) -> Optional[Dict[str, str]]:
    return {"team": rng.choice(("search", "support"))} if rng.random() < 0.5 else None


def draw_steps(rng: Random, max_steps: int, planned_checkpoints: int, n_epochs: int) -> int:
    """Steps of a generated job: 10..max_steps, mean about 100; when it fits, a multiple of
    the checkpoints and the epochs, so some checkpoints fall on an epoch end (full validation).
    """
    steps = min(max_steps, 10 + int(rng.expovariate(1 / 90)))
    if planned_checkpoints >= 1:
        unit = math.lcm(planned_checkpoints, n_epochs)
        aligned = -(-steps // unit) * unit
        if aligned > max_steps:
            aligned -= unit
        if aligned >= max(10, planned_checkpoints):
            steps = aligned
    return steps


def _draw_method(rng: Random) -> str:
    draw = rng.random()
    return "dpo" if draw < 0.12 else "reinforcement" if draw < 0.24 else "supervised"


def _ensure_every_method(statuses: List[str], methods: List[str], avoid: set) -> None:
    """Makes rare methods appear at least once, preferably on jobs that trained to the end."""
    rank = {"succeeded": 0, "running": 1}
    for kind in ("reinforcement", "dpo"):
        if kind in methods:
            continue
        candidates = [
            i for i in range(1, len(methods)) if methods[i] == "supervised" and i not in avoid
        ]
        if candidates:
            methods[min(candidates, key=lambda i: (rank.get(statuses[i], 2), i))] = kind


def generate(
    world: FineTuningWorld,
    jobs: int,
    max_checkpoints: int,
    checkpoints_per_job: Optional[int],
    big_job_checkpoints: Optional[int],
    big_job_steps: Optional[int],
) -> None:
    """Adds `jobs` jobs, oldest first, the world's clock moving on between them."""
    rng = world._rng
    active_from = jobs - len(ACTIVE_STATUSES)
    statuses = []
    for index in range(jobs):
        # Oldest jobs are mostly finished; the newest are still moving.
        if index >= active_from:
            statuses.append(ACTIVE_STATUSES[index - active_from])
        elif index < len(FIRST_STATUSES):
            statuses.append(FIRST_STATUSES[index])
        else:
            statuses.append(rng.choice(TERMINAL_STATUSES + ("succeeded", "succeeded")))
    methods = [_draw_method(rng) for _ in range(jobs)]
    # the long job: a succeeded one (all its steps written) other than the many-checkpoints one
    big = next((i for i in range(1, jobs) if statuses[i] == "succeeded"), min(1, jobs - 1))
    if jobs >= 6:
        _ensure_every_method(statuses, methods, avoid={0, big})
    newest_training: Dict[str, str] = {}  # method -> training file of its newest job
    shared = False
    for index, status in enumerate(statuses):
        n_ckpt = rng.randint(0, max_checkpoints)
        if checkpoints_per_job is not None:
            n_ckpt = checkpoints_per_job
        if index == 0:
            n_ckpt = max(max_checkpoints, 3) if big_job_checkpoints is None else big_job_checkpoints
        if status in ("queued", "validating_files"):
            n_ckpt = 0
        # the same dataset trained twice: at least once, then now and then
        previous = newest_training.get(methods[index])
        reuse = previous is not None and (rng.random() < 0.2 or (not shared and index >= 2))
        shared = shared or reuse
        record = world.add_job(
            status=status,
            checkpoints=n_ckpt,
            validation=index % 4 != 1,
            method=methods[index],
            total_steps=big_job_steps if index == big else None,
            training_file=previous if reuse else None,
        )
        newest_training[methods[index]] = record["training_file"]
        world.now += rng.choice((0, 1, 7, 60, 3600))  # 0: jobs sharing a second
    if jobs >= 4:
        _age_and_delete(world)


def _age_and_delete(world: FineTuningWorld) -> None:
    """The oldest succeeded job's results are plain CSV (as for older jobs on the API); the
    validation file of an old finished job is deleted."""
    records = [job.record for job in world._jobs.values()]  # oldest first
    succeeded = [r for r in records if r["status"] == "succeeded"]
    if succeeded:
        world._files.set_base64(succeeded[0]["result_files"][0], False)
    finished = [r for r in records if r["status"] in TERMINAL_STATUSES and r["validation_file"]]
    finished.sort(key=lambda r: r["status"] == "succeeded")  # stable: failed/cancelled first
    if finished:
        world.delete_file(finished[0]["validation_file"])
