"""Job steps at once: as many as the workers while the CPU idles, one fewer per busy window
down to the fewest, twice as many per idle window; a step waits for a slot and gives up when
the run stops; and a load whose slots fall to the fewest still holds exactly the truth."""

from __future__ import annotations

import threading
from typing import List

import pytest

from sources.openai_fine_tuning import settings
from sources.openai_fine_tuning.http.stopping import StoppedError, clear_stop, request_stop
from sources.openai_fine_tuning.job_slots import JobSlots
from sources.openai_fine_tuning.source import build
from tests.helpers import API_KEY, assert_history_equal_truth, first_load_routes, python_pipeline

WAIT_S = 10.0  # a bound on waiting for a thread, not a timing assertion


class Machine:
    """A clock and a CPU clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0
        self.cpu_seconds = 5.0

    def clock(self) -> float:
        return self.now

    def cpu(self) -> float:
        return self.cpu_seconds

    def spend(self, seconds: float, busy: float) -> None:
        """`seconds` pass, with `busy` of a core used."""
        self.now += seconds
        self.cpu_seconds += seconds * busy


def _limits_after(slots: JobSlots, machine: Machine, windows: List[float]) -> List[int]:
    """The limit after each window of a step, one step per window at the given CPU use."""
    seen = []
    for busy in windows:
        with slots:
            machine.spend(settings.JOB_SLOTS_WINDOW, busy)
        seen.append(slots.limit)
    return seen


def test_busy_windows_take_one_slot_each_down_to_the_fewest_and_idle_ones_double():
    machine = Machine()
    slots = JobSlots(8, clock=machine.clock, cpu=machine.cpu)
    assert slots.limit == 8

    busy, middling, idle = 1.0, (settings.CPU_BUSY + settings.CPU_IDLE) / 2, 0.1
    limits = _limits_after(slots, machine, [busy] * 7 + [middling, idle, middling, idle, idle])

    assert limits == [7, 6, 5, 4, 3, 2, 2, 2, 4, 4, 8, 8]
    assert slots.lowest_limit == settings.FEWEST_JOB_SLOTS == 2
    assert (slots.in_use, slots.waiting) == (0, 0)


def test_a_window_ends_only_once_it_is_long_enough():
    machine = Machine()
    slots = JobSlots(4, clock=machine.clock, cpu=machine.cpu)
    for _ in range(3):  # 0.9 of a window, fully busy: no measure yet
        with slots:
            machine.spend(settings.JOB_SLOTS_WINDOW * 0.3, 1.0)
    assert slots.limit == 4
    with slots:
        machine.spend(settings.JOB_SLOTS_WINDOW * 0.2, 1.0)
    assert slots.limit == 3


def test_one_worker_has_one_slot_whatever_the_cpu():
    machine = Machine()
    slots = JobSlots(1, clock=machine.clock, cpu=machine.cpu)
    assert _limits_after(slots, machine, [1.0, 1.0, 0.0]) == [1, 1, 1]


def test_a_step_waits_for_a_free_slot():
    machine = Machine()
    slots = JobSlots(2, clock=machine.clock, cpu=machine.cpu)
    entered = threading.Event()

    def third_step() -> None:
        with slots:
            entered.set()

    with slots, slots:
        waiter = threading.Thread(target=third_step)
        waiter.start()
        for _ in range(1000):  # until it waits (bounded; not a timing assertion)
            if slots.waiting:
                break
            threading.Event().wait(0.01)
        assert (slots.in_use, slots.waiting, entered.is_set()) == (2, 1, False)
    waiter.join(WAIT_S)
    assert entered.is_set() and not waiter.is_alive()
    assert (slots.in_use, slots.waiting) == (0, 0)


def test_a_waiting_step_gives_up_when_the_run_stops():
    slots = JobSlots(1)
    failures: List[BaseException] = []

    def second_step() -> None:
        try:
            with slots:
                pass
        except StoppedError as error:
            failures.append(error)

    try:
        with slots:
            waiter = threading.Thread(target=second_step)
            waiter.start()
            request_stop()
            waiter.join(WAIT_S)
    finally:
        clear_stop()
    assert not waiter.is_alive()
    assert [type(f) for f in failures] == [StoppedError]
    assert (slots.in_use, slots.waiting) == (0, 0)


def test_a_load_whose_slots_fall_to_the_fewest_holds_exactly_the_truth(
    loader, sandbox, world, tmp_path, monkeypatch
):
    """Every window busy: the slots fall to the fewest within the first steps; the run's
    steps then wait for each other, and every table still equals the sandbox's truth, with
    the same requests. (A slot held across a yield leaves this run waiting forever: the
    test's timeout ends it.)"""
    monkeypatch.setattr(settings, "CPU_BUSY", 0.0)
    monkeypatch.setattr(settings, "JOB_SLOTS_WINDOW", 0.0)
    source, resolved = build(api_key=API_KEY, base_url=sandbox.base_url, workers=8)
    pipeline = python_pipeline(tmp_path, "slots")  # the loader's DuckDB file

    info = pipeline.run(source)

    assert not info.has_failed_jobs
    assert resolved.job_slots.lowest_limit == settings.FEWEST_JOB_SLOTS
    assert (resolved.job_slots.in_use, resolved.job_slots.waiting) == (0, 0)
    assert_history_equal_truth(loader, world)
    assert sandbox.stats.by_route == first_load_routes(world)


@pytest.mark.parametrize("workers", [2, 8])
def test_slots_start_at_the_workers(sandbox, workers):
    _, resolved = build(api_key=API_KEY, base_url=sandbox.base_url, workers=workers)
    assert (resolved.job_slots.limit, resolved.job_slots.most) == (workers, workers)
