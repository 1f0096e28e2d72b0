"""Property: whatever the data and the faults, runs with time passing between them end with
exactly the sandbox's truth loaded, no row lost and none duplicated."""

from __future__ import annotations

import random

import pytest

from fake_openai import FineTuningWorld, SandboxServer
from fake_openai.faults import FaultPlan
from pipelines.errors import explain
from tests.helpers import API_KEY, Loader, assert_history_equal_truth

# 12 seeds draw every fault kind, every page size and both worker counts (20 drew no more)
SEEDS = range(12)
FAST_RETRIES = {"max_attempts": 6, "backoff_base": 0.001, "backoff_max": 0.004}


def _run_until_loaded(loader: Loader, options: dict) -> int:
    """One scheduled run; a run that exhausts its retries is simply run again, as cron would."""
    for failures in range(8):
        try:
            loader.run(**options)
            return failures
        except Exception as error:  # only upstream failures are acceptable here
            assert explain(error)[0] == 4, explain(error)
    raise AssertionError("eight runs in a row failed")


@pytest.mark.parametrize("seed", SEEDS)
def test_random_data_random_faults_converge_to_truth(seed, tmp_path):
    rng = random.Random(seed)
    world = FineTuningWorld(
        seed=seed,
        jobs=rng.randint(1, 7),
        max_checkpoints=rng.randint(0, 6),
        null_metrics=rng.random() < 0.5,
        max_steps=rng.randint(10, 25),  # page size 1 reads every event on its own
        big_job_steps=None,
    )
    faults = FaultPlan(
        rate=rng.uniform(0.05, 0.35),
        seed=seed,
        retry_after="0",
        retry_after_ms="1",
        slow_seconds=0.3,
        kinds=rng.sample(FaultPlan.kinds, rng.randint(1, len(FaultPlan.kinds))),
    )
    options = {
        "page_size": rng.choice([1, 2, 3, 100]),
        "request_timeout": 0.15,
        "workers": rng.choice([1, 8]),
        **FAST_RETRIES,
    }
    with SandboxServer(world, api_key=API_KEY) as sandbox:
        sandbox.faults = faults
        loader = Loader(sandbox, tmp_path)
        for run in range(rng.randint(2, 3)):
            if run:
                world.advance(
                    seconds=rng.choice([0, 1, 60, 3600]), new_checkpoints=rng.randint(0, 4)
                )
                if rng.random() < 0.5:
                    world.add_job(
                        status=rng.choice(["running", "queued", "succeeded"]),
                        checkpoints=rng.randint(0, 5),
                        method=rng.choice(["supervised", "dpo", "reinforcement"]),
                    )
                if rng.random() < 0.3:
                    world.finish_running_jobs(rng.choice(["succeeded", "failed", "cancelled"]))
            _run_until_loaded(loader, options)
        assert_history_equal_truth(loader, world)
    assert sum(faults.snapshot().values()) > 0, "no fault was injected: the test proved nothing"
