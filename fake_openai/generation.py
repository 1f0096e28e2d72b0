"""How a seed lays out a world's history: which jobs exist, in which status, trained how.

The layout guarantees what tests need from any default world (every status, every method, a
job with more than 1,000 steps, a shared training file, one deleted file, one results file in
the older plain-CSV encoding, a job trained on an earlier fine-tuned model, training files with
each quirk of real uploads, a fine-tuned model with its own shutdown date and one deleted)
while the rest is drawn from the seed. What came after the first layout is chosen from it
without drawing, so that a seed keeps its job ids, statuses and times.
"""

from __future__ import annotations

import math
from random import Random
from typing import Any, Dict, List, Optional, Protocol, Tuple

from fake_openai import files


class Organization(Protocol):
    """What the layout is applied to: the world, seen through what generation needs of it
    (a structural type, so this module does not import the world that imports it)."""

    now: int
    _rng: Random
    _jobs: Dict[str, Any]
    _files: Any
    _models: Any
    _quirks: Dict[str, str]
    _big_training_file: Optional[str]
    _fine_tuned_base: Optional[Tuple[str, str]]

    def add_job(self, *args: Any, **kwargs: Any) -> Dict[str, Any]: ...

    def delete_file(self, file_id: str) -> None: ...

    def _own_training_file(self, job_id: str) -> str: ...

    def _set_dataset(self, file_id: str, **options: Any) -> None: ...


__all__ = ["Random", "generate", "plan_files", "plan_models"]

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
    world: Organization,
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
    trained_on_fine_tuned = False
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
        parent = None
        # a succeeded job shows the root kept in all its names; else the newest job, running
        if not trained_on_fine_tuned and (status == "succeeded" or index == jobs - 1):
            parent = _fine_tuned_parent(world, methods[index])
        record = world.add_job(
            status=status,
            checkpoints=n_ckpt,
            validation=index % 4 != 1,
            method=methods[index],
            total_steps=big_job_steps if index == big else None,
            training_file=previous if reuse else None,
            model=parent["fine_tuned_model"] if parent else None,
        )
        if parent:
            trained_on_fine_tuned = True
            world._fine_tuned_base = (parent["id"], record["id"])
        newest_training[methods[index]] = record["training_file"]
        world.now += rng.choice((0, 1, 7, 60, 3600))  # 0: jobs sharing a second
    if jobs >= 4:
        _age_and_delete(world)


def _fine_tuned_parent(world: Organization, kind: str) -> Optional[Dict[str, Any]]:
    """The job a new job of method `kind` trains on: the newest succeeded job whose model
    existed by now (not reinforcement: that trains reasoning models only), else None. Chosen
    from the records, without a draw, so that the seed lays out the same world as before."""
    if kind == "reinforcement":
        return None
    for job in reversed(list(world._jobs.values())):
        record = job.record
        if (
            record["status"] == "succeeded"
            and record["method"]["type"] != "reinforcement"
            and record["finished_at"] <= world.now
        ):
            return record
    return None


def _age_and_delete(world: Organization) -> None:
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


def _distinct_data_files(world: Organization) -> List[str]:
    """Existing training and validation files, each once, in the order jobs were created."""
    seen: Dict[str, None] = {}
    for job in world._jobs.values():
        for name in (job.record["training_file"], job.record["validation_file"]):
            if name and world._files.exists(name):
                seen[name] = None
    return list(seen)


def plan_files(world: Organization, big_training_file_bytes: Optional[int]) -> None:
    """Puts each of `files.QUIRKS` on a distinct file jobs name, and makes one training file
    big; from the layout alone (no draw), before any content is built.

    The invalid lines go to the training file of a job that failed with
    `invalid_training_file`, preferably one that no job trained past validation on.
    """
    records = [job.record for job in world._jobs.values()]  # oldest first
    quirks: Dict[str, str] = {}
    failed = [
        r
        for r in records
        if r["status"] == "failed"
        and (r.get("error") or {}).get("code") == "invalid_training_file"
        and world._files.exists(r["training_file"])
    ]
    if failed:
        idle = ("failed", "validating_files")  # jobs that never trained on their file

        def only_failed(record: Dict[str, Any]) -> bool:
            users = [r for r in records if r["training_file"] == record["training_file"]]
            return all(r["status"] in idle for r in users)

        chosen = next((r for r in failed if only_failed(r)), None)
        if chosen is None:  # every failed job shares its file with a job that trained on it
            chosen = failed[0]
            world._own_training_file(chosen["id"])
        quirks["invalid_lines"] = chosen["training_file"]
    others = [f for f in _distinct_data_files(world) if f not in quirks.values()]
    valid_quirks = [q for q in files.QUIRKS if q != "invalid_lines"]
    quirks.update(zip(valid_quirks, others, strict=False))  # fewer files: fewer quirks
    for name, file_id in quirks.items():
        world._set_dataset(file_id, quirk=name)
    world._quirks = quirks
    if big_training_file_bytes is None:
        return
    taken = set(quirks.values())
    succeeded = [r["training_file"] for r in records if r["status"] == "succeeded"]
    candidates = [f for f in succeeded + others if f not in taken and world._files.exists(f)]
    if candidates:
        world._big_training_file = candidates[0]
        world._set_dataset(candidates[0], target_bytes=big_training_file_bytes)


def plan_models(world: Organization) -> None:
    """Gives one fine-tuned model a shutdown date of its own and has its owner delete
    another, from the layout alone: succeeded jobs other than the fine-tuned base pair first,
    then the parent; the job trained on a fine-tuned model always keeps its model listed."""
    parent_id, child_id = world._fine_tuned_base or (None, None)
    records = [job.record for job in world._jobs.values() if job.record["status"] == "succeeded"]
    others = [r for r in records if r["id"] not in (parent_id, child_id)]
    pool = [r["fine_tuned_model"] for r in others + [r for r in records if r["id"] == parent_id]]
    if pool:
        world._models.own_date_model = pool[0]
    if len(pool) >= 2:
        # the newest other one; the parent only when there is no other
        world._models.deleted.add(pool[len(others) - 1] if len(others) >= 2 else pool[-1])
