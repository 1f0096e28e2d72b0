"""Checkpoints of different jobs are read concurrently, rate limits lower the concurrency, and
results stay exact."""

from __future__ import annotations

import pytest

from fake_openai import FineTuningWorld, SandboxServer
from fake_openai.faults import FaultPlan
from sources.openai_fine_tuning.http.throttle import RequestGate
from tests.helpers import (
    API_KEY,
    Loader,
    assert_checkpoints_equal_truth,
    assert_history_equal_truth,
    first_load_routes,
)
from tests.helpers.clock import FakeClock


def test_more_than_one_request_in_flight_and_exact_results(tmp_path):
    world = FineTuningWorld(seed=8, jobs=24, max_checkpoints=6)
    with SandboxServer(world, api_key=API_KEY, latency=0.05) as sandbox:
        loader = Loader(sandbox, tmp_path)
        summary = loader.run(workers=8)
        assert sandbox.stats.peak_in_flight > 1
        assert sandbox.stats.peak_in_flight <= 8
        assert summary.requests == sum(first_load_routes(world).values())
        assert_history_equal_truth(loader, world)


def test_one_worker_means_one_request_at_a_time(tmp_path):
    world = FineTuningWorld(seed=8, jobs=10, max_checkpoints=6)
    with SandboxServer(world, api_key=API_KEY, latency=0.01) as sandbox:
        loader = Loader(sandbox, tmp_path)
        loader.run(workers=1)
        assert sandbox.stats.peak_in_flight == 1
        assert_checkpoints_equal_truth(loader, world)


def test_rate_limits_lower_the_concurrency_and_the_summary_says_so(tmp_path):
    world = FineTuningWorld(seed=9, jobs=30, max_checkpoints=4)
    with SandboxServer(world, api_key=API_KEY, latency=0.02) as sandbox:
        sandbox.faults = FaultPlan(
            rate=0.3,
            seed=2,
            kinds=["429_retry_after_ms"],
            routes=["checkpoints"],
            retry_after_ms="5",
        )
        loader = Loader(sandbox, tmp_path)
        summary = loader.run(workers=8, max_attempts=10)
        assert summary.lowest_concurrency is not None and summary.lowest_concurrency < 8
        assert any(
            line.startswith("  rate limited: concurrency lowered from 8 to ")
            for line in summary.lines()
        )
        assert_checkpoints_equal_truth(loader, world)


def test_gate_halves_on_429_once_per_burst_and_grows_back():
    clock = FakeClock()
    gate = RequestGate(8, cooldown=0.5, clock=clock, sleep=clock.sleep)
    gate.rate_limited()
    gate.rate_limited()  # same burst: counted once
    assert gate.limit == 4
    clock.now += 1
    gate.rate_limited()
    assert gate.limit == 2 and gate.lowest_limit == 2
    for _ in range(3):  # 1/limit per success: about one more slot per window of successes
        gate.succeeded()
    assert int(gate.limit) == 3
    for _ in range(100):
        gate.succeeded()
    assert gate.limit == 8  # capped at the worker count


def test_a_server_that_rate_limits_never_fails_the_run_and_the_load_is_exact(tmp_path):
    """A token bucket of 25 requests/s (bursts of 2), 8 workers asking for more: 429s with
    retry-after-ms slow the run down, none uses up a request's attempts, every table is exact."""
    world = FineTuningWorld(seed=4, jobs=10, max_steps=40, big_job_steps=None)
    with SandboxServer(
        world, api_key=API_KEY, latency=0.005, rate_limit=25, rate_burst=2
    ) as sandbox:
        loader = Loader(sandbox, tmp_path)
        summary = loader.run(workers=8, max_attempts=2)  # few attempts: a 429 must not count
        assert sandbox.stats.snapshot()["rate_limited"] > 0  # the limit was hit
        assert_history_equal_truth(loader, world)
        admitted = sandbox.stats.total - sandbox.stats.snapshot()["rate_limited"]
        assert admitted == sum(first_load_routes(world).values())
        assert summary.requests == sandbox.stats.total


def test_a_server_that_refuses_everything_still_ends_the_run(cli, sandbox):
    sandbox.faults = FaultPlan(rate=1.0, kinds=["429_retry_after_ms"], retry_after_ms="1")
    code, _, err = cli(env={"SOURCES__OPENAI_FINE_TUNING__MAX_ATTEMPTS": "3"})
    assert code == 4
    assert err == (
        "openai-ft: error: GET /v1/fine_tuning/jobs failed after 3 attempts: last answer 429"
        " Rate limit reached for requests."
    )


def test_gate_spaces_request_starts_by_the_rate_cap():
    clock = FakeClock()
    gate = RequestGate(4, max_requests_per_second=10, clock=clock, sleep=clock.sleep)
    starts = []
    for _ in range(5):
        with gate:
            starts.append(round(clock.now - 100.0, 6))
    assert starts == [0.0, 0.1, 0.2, 0.3, 0.4]


@pytest.mark.parametrize("workers", [0, 65])
def test_workers_out_of_range(workers):
    from sources.openai_fine_tuning import openai_fine_tuning
    from sources.openai_fine_tuning.errors import ConfigurationError

    with pytest.raises(
        ConfigurationError, match=f"workers must be between 1 and 64, got {workers}"
    ):
        openai_fine_tuning(api_key="k", base_url="http://127.0.0.1:1/v1", workers=workers)


def test_workers_flag(sandbox, world, tmp_path, monkeypatch, capsys):
    from pipelines.cli import main

    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", sandbox.base_url)
    sandbox.latency = 0.02
    args = ["load", "--duckdb-path", str(tmp_path / "w.duckdb"), "--pipelines-dir", str(tmp_path)]
    assert main([*args, "--workers", "1"]) == 0
    assert sandbox.stats.peak_in_flight == 1
    assert main([*args, "--workers", "0"]) == 2
    assert "workers must be between 1 and 64, got 0" in capsys.readouterr().err
