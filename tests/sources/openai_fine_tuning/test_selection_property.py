"""Property: whatever sequence of resource selections a user runs, with time passing between
runs, each run leaves its tables equal to the sandbox's truth, and a full run at the end
leaves every table exactly as one full run would."""

from __future__ import annotations

import random

import pytest

from fake_openai import FineTuningWorld, SandboxServer
from tests.helpers import API_KEY, RESOURCES, Loader, assert_history_equal_truth

SEEDS = range(8)


def _advance(world: FineTuningWorld, rng: random.Random) -> None:
    """Time passes: jobs train, new jobs start, some finish."""
    world.advance(seconds=rng.choice([0, 1, 60, 3600]), new_checkpoints=rng.randint(0, 3))
    if rng.random() < 0.5:
        world.add_job(
            status=rng.choice(["running", "queued", "succeeded", "failed"]),
            checkpoints=rng.randint(0, 4),
            method=rng.choice(["supervised", "dpo", "reinforcement"]),
        )
    if rng.random() < 0.3:
        world.finish_running_jobs(rng.choice(["succeeded", "failed", "cancelled"]))


@pytest.mark.parametrize("seed", SEEDS)
def test_any_selection_sequence_ends_as_one_full_run(seed, tmp_path):
    rng = random.Random(1000 + seed)
    world = FineTuningWorld(
        seed=seed,
        jobs=rng.randint(2, 8),
        max_checkpoints=rng.randint(0, 5),
        max_steps=rng.randint(10, 40),
        big_job_steps=None,
    )
    page_size = rng.choice([2, 5, 100])
    with SandboxServer(world, api_key=API_KEY) as sandbox:
        loader = Loader(sandbox, tmp_path)
        selections = []
        for _ in range(rng.randint(2, 5)):
            selected = sorted(rng.sample(RESOURCES, rng.randint(1, len(RESOURCES))))
            selections.append(selected)
            loader.run(resources=selected, page_size=page_size)
            # what was selected is complete and exact, whatever ran before
            _check(loader, world, selected, selections)
            _advance(world, rng)
        loader.run(page_size=page_size)
        _check(loader, world, RESOURCES, selections)


def _check(loader: Loader, world: FineTuningWorld, resources, selections) -> None:
    try:
        assert_history_equal_truth(loader, world, resources=resources)
    except AssertionError as error:
        raise AssertionError(f"after runs selecting {selections}: {error}") from error
