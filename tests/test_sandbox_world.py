"""The sandbox's world holds a realistic training history: steps, epochs, events in time order,
files and results CSVs that agree with each other, deterministically per seed."""

from __future__ import annotations

import base64
import csv
import io
from collections import Counter
from typing import Any, Dict, List

import pytest

from fake_openai import FineTuningWorld
from fake_openai.faults import TokenBucket
from fake_openai.files import UnknownFileError

TERMINAL = ("succeeded", "failed", "cancelled")


@pytest.fixture(scope="module")
def default_world() -> FineTuningWorld:
    """The tests' default world, read-only here."""
    return FineTuningWorld(seed=11, jobs=12, max_checkpoints=8)


def _oldest_first(events: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    return list(reversed(events))


def _metrics(events: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    return [e for e in _oldest_first(events) if e["type"] == "metrics"]


def _jobs(world: FineTuningWorld, status: str = None, method: str = None) -> List[dict]:
    return [
        j
        for j in world.truth_jobs()
        if (status is None or j["status"] == status)
        and (method is None or j["method"]["type"] == method)
    ]


def _parse_csv(body: bytes) -> List[Dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode())))


def test_total_steps_are_bounded_with_one_long_job(default_world):
    steps = {j: default_world.total_steps(j) for j in default_world.job_ids()}
    assert all(10 <= n <= 2000 for n in steps.values()), steps
    long_jobs = [j for j, n in steps.items() if n > 1000]
    assert len(long_jobs) == 1
    assert default_world.status_of(long_jobs[0]) == "succeeded"
    assert len(default_world.truth_events()[long_jobs[0]]) > 1000  # 10+ pages at limit 100
    many = FineTuningWorld(seed=3, jobs=300, big_job_steps=None)
    drawn = [many.total_steps(j) for j in many.job_ids()]
    assert max(drawn) <= 300 and 70 <= sum(drawn) / len(drawn) <= 130


def test_big_job_steps_and_max_steps_are_honoured():
    world = FineTuningWorld(seed=2, jobs=8, max_steps=40, big_job_steps=777)
    steps = sorted(world.total_steps(j) for j in world.job_ids())
    assert steps[-1] == 777 and all(10 <= n <= 40 for n in steps[:-1])
    oldest = world.job_ids()[-1]  # the many-checkpoints job is not the long one
    assert world.total_steps(oldest) != 777
    alone = FineTuningWorld(seed=2, jobs=1, big_job_steps=50)  # one job: it is both
    assert alone.total_steps(alone.job_ids()[0]) == 50
    assert len(alone.list_checkpoints(alone.job_ids()[0], None, 100)[0]) == 8
    unbounded = FineTuningWorld(seed=2, jobs=12, big_job_steps=None)
    assert max(unbounded.total_steps(j) for j in unbounded.job_ids()) <= 300
    with pytest.raises(ValueError):
        FineTuningWorld(max_steps=9)


def test_succeeded_jobs_have_one_metrics_event_per_step_in_time_order(default_world):
    events = default_world.truth_events()
    succeeded = _jobs(default_world, "succeeded")
    assert len(succeeded) >= 3
    for job in succeeded:
        total = default_world.total_steps(job["id"])
        metrics = _metrics(events[job["id"]])
        assert [e["data"]["step"] for e in metrics] == list(range(1, total + 1))
        assert {e["data"]["total_steps"] for e in metrics} == {total}
        assert default_world.job_steps(job["id"]) == total
        times = [e["created_at"] for e in metrics]
        assert times == sorted(times) and times[-1] > times[0]
        assert all(e["level"] == "info" for e in metrics)
        if job["method"]["type"] != "reinforcement":
            step = metrics[11]
            assert step["message"] == (
                f"Step 12/{total}: training loss={step['data']['train_loss']:.4f}"
            )


def test_queued_and_validating_jobs_have_no_steps_or_checkpoints(default_world):
    for status in ("queued", "validating_files"):
        for job in _jobs(default_world, status):
            assert default_world.job_steps(job["id"]) == 0
            assert default_world.list_checkpoints(job["id"], None, 100)[0] == []
            assert not _metrics(default_world.truth_events()[job["id"]])


def test_full_validation_only_at_epoch_ends_and_valid_only_with_a_validation_file():
    world = FineTuningWorld(seed=11, jobs=12, null_metrics=True)
    events = world.truth_events()
    seen_full = seen_null = 0
    for job in world.truth_jobs():
        if job["method"]["type"] == "reinforcement" or not world.job_steps(job["id"]):
            continue
        ordered = _oldest_first(events[job["id"]])
        n_epochs = job["hyperparameters"]["n_epochs"]
        epoch_steps = [
            ordered[i - 1]["data"]["step"]
            for i, e in enumerate(ordered)
            if e["message"].startswith("Epoch ")
        ]
        for metric in _metrics(events[job["id"]]):
            data = metric["data"]
            assert ("valid_loss" in data) == (job["validation_file"] is not None)
            if job["validation_file"] is None:
                assert "full_valid_loss" not in data
            elif data["step"] in epoch_steps:
                assert isinstance(data["full_valid_loss"], float)
                assert isinstance(data["full_valid_mean_token_accuracy"], float)
                seen_full += 1
            else:
                assert data["full_valid_loss"] is None  # explicit null with null_metrics
                assert data["full_valid_mean_token_accuracy"] is None
                seen_null += 1
        if job["status"] == "succeeded":
            assert len(epoch_steps) == n_epochs
            assert epoch_steps[-1] == world.total_steps(job["id"])
            messages = [e["message"] for e in ordered if e["message"].startswith("Epoch ")]
            assert messages == [f"Epoch {k}/{n_epochs} completed" for k in range(1, n_epochs + 1)]
    assert seen_full and seen_null
    plain = FineTuningWorld(seed=11, jobs=12)  # without null_metrics they are absent
    for events_of_job in plain.truth_events().values():
        for metric in _metrics(events_of_job):
            assert metric["data"].get("full_valid_loss", 0.0) is not None


def test_generated_checkpoints_with_validation_mix_full_and_no_full_validation(default_world):
    with_validation = [c for c in default_world.truth_checkpoints() if "valid_loss" in c["metrics"]]
    full = [c for c in with_validation if "full_valid_loss" in c["metrics"]]
    assert full and len(full) < len(with_validation)
    nulls = FineTuningWorld(seed=11, jobs=12, null_metrics=True).truth_checkpoints()
    assert any(c["metrics"].get("full_valid_loss", 0) is None for c in nulls)


def test_checkpoints_sit_at_steps_with_that_steps_metrics(default_world):
    events = default_world.truth_events()
    checked = 0
    for checkpoint in default_world.truth_checkpoints():
        job_id, step = checkpoint["fine_tuning_job_id"], checkpoint["step_number"]
        job = default_world.get_job(job_id)
        by_step = {e["data"]["step"]: e for e in _metrics(events[job_id])}
        assert checkpoint["metrics"]["step"] == float(step)
        assert isinstance(checkpoint["metrics"]["step"], float)
        if job["method"]["type"] == "reinforcement":
            reward = by_step[step]["data"]["scores"]["train_reward_mean"]
            assert checkpoint["metrics"]["train_reward_mean"] == reward
            continue
        data = by_step[step]["data"]
        expected = {k: v for k, v in data.items() if k not in ("step", "total_steps")}
        assert {k: v for k, v in checkpoint["metrics"].items() if k != "step"} == expected
        assert checkpoint["created_at"] == by_step[step]["created_at"]
        checked += 1
    assert checked > 20


def test_reinforcement_events_nest_scores_per_grader(default_world):
    world = FineTuningWorld(seed=11, jobs=12)
    world.add_job(status="succeeded", method="reinforcement", checkpoints=2)
    world.add_job(status="running", method="reinforcement", validation=False, checkpoints=1)
    grader_kinds = set()
    for job in _jobs(world, method="reinforcement"):
        grader = job["method"]["reinforcement"]["grader"]
        grader_kinds.add(grader["type"])
        names = [grader["name"]] + (
            [grader["graders"]["name"]] if grader["type"] == "multi" else []
        )
        metrics = _metrics(world.truth_events()[job["id"]])
        assert len(metrics) == world.job_steps(job["id"])
        for event in metrics:
            data = event["data"]
            assert set(data) == {"step", "total_steps", "scores", "usage", "errors", "timing"}
            scores = data["scores"]
            assert [g["name"] for g in scores["graders"]] == names
            has_validation = job["validation_file"] is not None
            assert ("valid_reward_mean" in scores) == has_validation
            assert all(("valid_reward_mean" in g) == has_validation for g in scores["graders"])
            assert 0 <= scores["train_reward_mean"] <= 1
            usage = data["usage"]
            assert isinstance(usage["grader_prompt_tokens"], int)
            assert isinstance(usage["grader_completion_tokens"], int)
            assert isinstance(usage["train_reasoning_tokens_mean"], float)
            assert 0 <= data["errors"]["grader_error_rate"] < 1
            assert set(data["timing"]) == {"step_seconds", "sampling_seconds", "grading_seconds"}
            assert event["message"].startswith(f"Step {data['step']}/{data['total_steps']}: ")
    assert grader_kinds <= {"string_check", "multi"} and grader_kinds


def test_generated_jobs_mix_methods(default_world):
    methods = Counter(j["method"]["type"] for j in default_world.truth_jobs())
    assert set(methods) == {"supervised", "dpo", "reinforcement"}
    assert methods["supervised"] > len(default_world.job_ids()) / 2
    for job in _jobs(default_world, method="dpo"):
        assert job["method"]["dpo"]["hyperparameters"]["beta"] in (0.1, 0.2, 0.5)
        assert set(_metrics(default_world.truth_events()[job["id"]])[0]["data"]) >= {
            "step",
            "total_steps",
            "train_loss",
            "train_mean_token_accuracy",
        }
    for seed in range(8):  # every seed: each method at least once from 6 jobs on
        world = FineTuningWorld(seed=seed, jobs=6, max_checkpoints=2)
        assert {j["method"]["type"] for j in world.truth_jobs()} == {
            "supervised",
            "dpo",
            "reinforcement",
        }


def test_message_events_and_levels(default_world):
    events = default_world.truth_events()
    for job in default_world.truth_jobs():
        ordered = _oldest_first(events[job["id"]])
        messages = [e["message"] for e in ordered]
        assert messages[0] == f"Created fine-tuning job: {job['id']}"
        assert messages[1].startswith(f"Validating training file: {job['training_file']}")
        if job["validation_file"] is None:
            assert (ordered[2]["level"], ordered[2]["message"]) == (
                "warn",
                "No validation file: validation metrics will not be reported",
            )
        if job["status"] not in ("validating_files", "queued"):
            assert "Fine-tuning job started" in messages
        final = {
            "succeeded": ("info", "The job has successfully completed"),
            "failed": ("error", "Job failed: the training file has too few examples"),
            "cancelled": ("warn", "Fine-tuning job cancelled"),
        }.get(job["status"])
        if final:
            assert (ordered[-1]["level"], ordered[-1]["message"]) == final
            assert ordered[-1]["created_at"] == job["finished_at"]
        for event in ordered:
            assert event["object"] == "fine_tuning.job.event"
            assert event["type"] in ("message", "metrics") and event["level"] in (
                "info",
                "warn",
                "error",
            )
            assert ("data" in event) == (event["type"] == "metrics")
    levels = Counter(e["level"] for job_events in events.values() for e in job_events)
    assert levels["warn"] > levels["error"] >= 1


def _steps_in_order(events: List[Dict[str, Any]]) -> bool:
    """Served oldest first, metrics steps only go up: no step was stamped before an earlier
    one (served order is by time, so a step appended with an older time would come first)."""
    steps = [e["data"]["step"] for e in _metrics(events)]
    return steps == list(range(1, len(steps) + 1))


def test_events_share_seconds_and_never_go_back_in_time():
    world = FineTuningWorld(seed=11, jobs=12)
    ties = sum(
        count - 1
        for events in world.truth_events().values()
        for count in Counter(e["created_at"] for e in events).values()
    )
    assert ties > 100
    before = {
        job_id: ({e["id"] for e in events}, events[0]["created_at"])
        for job_id, events in world.truth_events().items()
    }
    running = _jobs(world, "running")[0]["id"]
    old = world.list_checkpoints(running, None, 100)[0][-1]["created_at"] - 5
    late = world.add_checkpoint(running, created_at=old)  # older than the job's newest event
    assert late["created_at"] == old
    world.advance(seconds=600, new_checkpoints=2)
    world.add_job(status="running", checkpoints=2)
    world.advance(seconds=60, new_checkpoints=1, finish=True)
    grown = 0
    for job_id, events in world.truth_events().items():
        assert _steps_in_order(events), job_id
        if world.status_of(job_id) == "succeeded":  # trained to the end
            assert world.job_steps(job_id) == world.total_steps(job_id)
        if job_id not in before:
            continue
        seen, newest = before[job_id]
        fresh = [e for e in events if e["id"] not in seen]
        assert all(e["created_at"] >= newest for e in fresh), job_id
        grown += bool(fresh)
    assert grown >= 4
    late_step = [
        e
        for e in world.truth_events()[running]
        if e["type"] == "metrics" and e["data"]["step"] == late["step_number"]
    ]
    assert late_step and late_step[0]["created_at"] >= before[running][1] > old


def test_steps_advance_with_the_clock():
    world = FineTuningWorld(seed=4, jobs=6)
    running = _jobs(world, "running")[0]["id"]
    steps = world.job_steps(running)
    world.advance(seconds=3600, new_checkpoints=2)
    assert world.job_steps(running) > steps
    fresh = [
        e
        for e in world.truth_events()[running]
        if e["type"] == "metrics" and e["data"]["step"] > steps
    ]
    assert fresh and min(e["created_at"] for e in fresh) >= world.now


def test_running_past_the_plan_raises_total_steps():
    world = FineTuningWorld(seed=4, jobs=0)
    job = world.add_job(status="running", checkpoints=0)
    planned = world.total_steps(job["id"])
    for _ in range(40):
        world.add_checkpoint(job["id"])
    assert world.total_steps(job["id"]) == world.job_steps(job["id"]) > planned
    world.finish_running_jobs()
    rows = [r for r in world.truth_results() if r["fine_tuning_job_id"] == job["id"]]
    assert [r["step"] for r in rows] == list(range(1, world.total_steps(job["id"]) + 1))


def test_add_job_makes_exactly_the_checkpoints_asked_for():
    world = FineTuningWorld(seed=4, jobs=0)
    for status in ("running", "succeeded", "failed", "cancelled"):
        for method in ("supervised", "dpo", "reinforcement"):
            job = world.add_job(status=status, checkpoints=3, method=method)
            assert len(world.list_checkpoints(job["id"], None, 100)[0]) == 3
            assert world.get_job(job["id"])["method"]["type"] == method
            assert (job["result_files"] != []) == (status == "succeeded")
    with pytest.raises(ValueError):
        world.add_job(method="unsupervised")


def test_files_are_real_shared_and_one_is_deleted(default_world):
    jobs = default_world.truth_jobs()
    referenced = {
        f for j in jobs for f in [j["training_file"], j["validation_file"], *j["result_files"]] if f
    }
    files = default_world.truth_files()
    ids = [f["id"] for f in files]
    assert len(ids) == len(set(ids))
    deleted = default_world.deleted_file_ids()
    assert len(deleted) == 1 and set(ids) | deleted == referenced and not set(ids) & deleted
    (gone,) = deleted
    owner = next(j for j in jobs if gone in (j["training_file"], j["validation_file"]))
    assert owner["status"] in TERMINAL
    with pytest.raises(UnknownFileError):
        default_world.get_file(gone)
    with pytest.raises(UnknownFileError):
        default_world.file_content(gone)
    training = Counter(j["training_file"] for j in jobs)
    assert max(training.values()) >= 2  # the same dataset trained twice
    by_id = {f["id"]: f for f in files}
    for job in jobs:
        for name in ("training_file", "validation_file"):
            if job[name] in by_id:
                record = by_id[job[name]]
                assert (record["purpose"], record["status"]) == ("fine-tune", "processed")
                assert record["filename"].endswith(".jsonl")
                assert record["created_at"] < job["created_at"]
        if job["status"] == "succeeded":
            (result,) = job["result_files"]
            assert by_id[result]["purpose"] == "fine-tune-results"
            assert by_id[result]["filename"] == "step_metrics.csv"
            assert by_id[result]["created_at"] == job["finished_at"]
        else:
            assert job["result_files"] == []
    assert any("expires_at" in f for f in files) and any("expires_at" not in f for f in files)
    for record in files:
        assert record["bytes"] == len(default_world.file_content(record["id"]))
        assert default_world.get_file(record["id"]) == record


def test_results_csv_holds_the_truth_rows(default_world):
    world = FineTuningWorld(seed=11, jobs=12)
    world.add_job(status="succeeded", method="reinforcement", checkpoints=2, validation=False)
    truth: Dict[str, List[dict]] = {}
    for row in world.truth_results():
        truth.setdefault(row["file_id"], []).append(row)
    encodings = Counter()
    for job in _jobs(world, "succeeded"):
        (file_id,) = job["result_files"]
        body = world.file_content(file_id)
        if body.startswith(b"step,"):
            encodings["plain"] += 1
            text = body
        else:
            encodings["base64"] += 1
            text = base64.b64decode(body, validate=True)
        rows = _parse_csv(text)
        reinforcement = job["method"]["type"] == "reinforcement"
        header = ["step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy"]
        assert list(rows[0]) == header + (
            ["train_reward_mean", "valid_reward_mean"] if reinforcement else []
        )
        parsed = [
            {
                "file_id": file_id,
                "fine_tuning_job_id": job["id"],
                **{k: (int(v) if k == "step" else float(v) if v else None) for k, v in r.items()},
            }
            for r in rows
        ]
        assert parsed == truth[file_id]
        assert [r["step"] for r in parsed] == list(range(1, world.total_steps(job["id"]) + 1))
        if job["validation_file"] is None:
            assert {r["valid_loss"] for r in parsed} == {None}
        metrics = {e["data"]["step"]: e["data"] for e in _metrics(world.truth_events()[job["id"]])}
        for row in parsed:  # the same numbers as the metrics events
            data = metrics[row["step"]]
            if reinforcement:
                assert row["train_reward_mean"] == data["scores"]["train_reward_mean"]
            else:
                assert row["train_loss"] == data["train_loss"]
                assert row["train_accuracy"] == data["train_mean_token_accuracy"]
                assert row["valid_loss"] == data.get("valid_loss")
    assert encodings["plain"] == 1 and encodings["base64"] >= 3
    assert set(truth) == {f for j in _jobs(world, "succeeded") for f in j["result_files"]}
    oldest = world.truth_jobs()[-1]  # the plain CSV is the oldest job's
    assert world.file_content(oldest["result_files"][0]).startswith(b"step,")


def test_cancelled_and_failed_jobs_have_no_results(default_world):
    for status in ("failed", "cancelled"):
        for job in _jobs(default_world, status):
            assert job["result_files"] == [] and job["fine_tuned_model"] is None


def test_raw_edits_for_bad_input_tests():
    world = FineTuningWorld(seed=11, jobs=6)
    job_id = world.job_ids()[0]
    newest = world.truth_events()[job_id][0]["created_at"]
    odd = world.add_event(job_id, "odd", type="metrics", level="warn", data=[1, 2])
    assert world.truth_events()[job_id][0] == odd
    assert (odd["data"], odd["level"], odd["type"]) == ([1, 2], "warn", "metrics")
    in_ms = world.add_event(job_id, "ms", created_at=newest * 1000)
    assert world.list_events(job_id, None, 1)[0][0]["id"] == in_ms["id"]
    assert in_ms["created_at"] == newest * 1000
    following = world.add_event(job_id, "next")  # an explicit time does not move the clock
    assert following["created_at"] < newest * 1000
    world.patch_job(job_id, finished_at=1_750_000_000_000, created_at=1)
    assert world.get_job(job_id)["finished_at"] == 1_750_000_000_000
    assert world.job_ids()[-1] == job_id  # re-sorted by the patched created_at
    file_id = world.truth_files()[0]["id"]
    world.patch_file(file_id, bytes=-1, purpose="nonsense")
    assert world.get_file(file_id)["bytes"] == -1
    world.set_file_content(file_id, b"step,train_loss\n1,oops\n")
    assert world.file_content(file_id) == b"step,train_loss\n1,oops\n"
    assert world.get_file(file_id)["bytes"] == len(b"step,train_loss\n1,oops\n")
    world.delete_file(file_id)
    assert file_id in world.deleted_file_ids()
    assert file_id not in {f["id"] for f in world.truth_files()}
    with pytest.raises(UnknownFileError):
        world.get_file("file-nosuch")


def test_same_seed_same_world_and_extra_metrics_everywhere():
    first, second = FineTuningWorld(seed=5, jobs=10), FineTuningWorld(seed=5, jobs=10)
    running = _jobs(first, "running")[0]["id"]
    for world in (first, second):
        world.extra_metrics = {"reward_mean": 1}
        world.advance(seconds=60, new_checkpoints=1)
    assert first.truth_jobs() == second.truth_jobs()
    assert first.truth_events() == second.truth_events()
    assert first.truth_files() == second.truth_files()
    assert first.truth_results() == second.truth_results()
    assert first.truth_checkpoints() == second.truth_checkpoints()
    assert FineTuningWorld(seed=6, jobs=10).truth_jobs() != first.truth_jobs()
    newest_checkpoint = first.list_checkpoints(running, None, 1)[0][0]
    assert newest_checkpoint["metrics"]["reward_mean"] == 1
    newest_metrics = _metrics(first.truth_events()[running])[-1]
    assert newest_metrics["data"]["reward_mean"] == 1


def test_the_benchmark_world_has_its_long_job():
    # (how fast it is generated is the benchmark's business, not a test's)
    world = FineTuningWorld(seed=1, jobs=1000, max_checkpoints=6, big_job_steps=5000)
    assert max(world.total_steps(j) for j in world.job_ids()) == 5000


def test_token_bucket_admits_rate_per_second_after_a_burst():
    now = [64.0]  # binary fractions of a second: exact float arithmetic
    bucket = TokenBucket(rate=4, burst=4, clock=lambda: now[0])
    assert [bucket.acquire() for _ in range(6)] == [None] * 4 + [250, 250]
    now[0] += 0.125  # half a token back
    assert bucket.acquire() == 125
    now[0] += 0.875  # 4 tokens back in all: the refused requests took none
    assert sum(bucket.acquire() is None for _ in range(20)) == 4
    now[0] += 60  # never more than the burst
    assert sum(bucket.acquire() is None for _ in range(20)) == 4
    now[0] += 0.25  # then `rate` per second
    assert [bucket.acquire() for _ in range(2)] == [None, 250]
    assert TokenBucket(rate=0.5).burst == 1 and TokenBucket(rate=20).burst == 20
    with pytest.raises(ValueError):
        TokenBucket(rate=0)


def test_served_items_are_copies():
    world = FineTuningWorld(seed=11, jobs=6)
    job_id = world.job_ids()[0]
    world.list_jobs(None, 1)[0][0]["status"] = "changed"
    world.truth_jobs()[0]["status"] = "changed"
    world.list_events(job_id, None, 100)[0][-1]["message"] = "changed"
    world.truth_events()[job_id][-1]["message"] = "changed"
    world.get_file(world.truth_files()[0]["id"])["bytes"] = -1
    assert world.get_job(job_id)["status"] != "changed"
    assert world.truth_events()[job_id][-1]["message"] == f"Created fine-tuning job: {job_id}"
    assert world.truth_files()[0]["bytes"] > 0
