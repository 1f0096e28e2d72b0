"""The sandbox's world holds a realistic training history: steps, epochs, events in time order,
files and results CSVs that agree with each other, training files in each method's shape with
the quirks of real uploads, and the models the key sees, deterministically per seed."""

from __future__ import annotations

import base64
import csv
import datetime
import hashlib
import io
import json
from collections import Counter
from typing import Any, Dict, List

import pytest

from fake_openai import FineTuningWorld
from fake_openai.faults import TokenBucket
from fake_openai.files import UnknownFileError
from fake_openai.generation import BASE_MODELS, REINFORCEMENT_MODEL
from fake_openai.models import UnknownModelError, root_model
from tests.helpers import default_world as conftest_world

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


# ---- what existing worlds keep ------------------------------------------------------------


def _layout_fingerprint(world: FineTuningWorld) -> str:
    jobs = [
        (j["id"], j["status"], j["created_at"], j["finished_at"], j["training_file"])
        + (j["validation_file"], j["result_files"], j["seed"], j["hyperparameters"])
        for j in world.truth_jobs()
    ]
    checkpoints = [(c["id"], c["step_number"], c["created_at"]) for c in world.truth_checkpoints()]
    events = {k: [(e["id"], e["created_at"]) for e in v] for k, v in world.truth_events().items()}
    blob = json.dumps([jobs, checkpoints, events, sorted(world.deleted_file_ids())], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@pytest.mark.parametrize(
    ("options", "fingerprint"),
    [
        ({"seed": 11, "jobs": 12, "max_checkpoints": 8, "big_job_steps": 300}, "32805b5a8cb3f2df"),
        ({"seed": 11, "jobs": 12, "max_checkpoints": 8}, "ba104d6cb3b75180"),
        ({"seed": 3, "jobs": 300, "big_job_steps": None}, "802e6d51224593f0"),
    ],
)
def test_a_seed_keeps_its_job_ids_statuses_and_times(options, fingerprint):
    # taken before training files, quirks and models were added: what came later is chosen
    # without drawing from the world's generator, so these stay (update only on purpose)
    world = FineTuningWorld(**options, big_training_file_bytes=100_000)
    assert _layout_fingerprint(world) == fingerprint


# ---- training files -----------------------------------------------------------------------

QUIRK_NAMES = {"crlf", "no_final_newline", "u2028_emoji", "bom", "invalid_lines"}
BOM = b"\xef\xbb\xbf"
EMOJI = "\U0001f680".encode()


def _jsonl(content: bytes) -> List[bytes]:
    """The lines of a JSONL body, split on `\\n` only (U+2028 is no line break)."""
    body = content[len(BOM) :] if content.startswith(BOM) else content
    lines = body.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


def _data_files_by_method(world: FineTuningWorld) -> Dict[str, List[bytes]]:
    """Method -> every parsed-able line of its jobs' existing training and validation files."""
    contents = world.truth_training_files()
    invalid = world.quirk_files().get("invalid_lines")
    by_method: Dict[str, List[bytes]] = {}
    for job in world.truth_jobs():
        for name in (job["training_file"], job["validation_file"]):
            if name in contents and name != invalid:
                by_method.setdefault(job["method"]["type"], []).extend(_jsonl(contents[name]))
    return by_method


def _check_chat(messages: List[Dict[str, Any]], seen: Counter) -> None:
    for index, message in enumerate(messages):
        role = message["role"]
        assert role in ("system", "developer", "user", "assistant", "tool")
        seen[role] += 1
        if "weight" in message:
            assert role == "assistant" and message["weight"] in (0, 1)
            seen[f"weight {message['weight']}"] += 1
        if "tool_calls" in message:
            assert role == "assistant"
            (call,) = message["tool_calls"]
            assert call["type"] == "function"
            json.loads(call["function"]["arguments"])
            following = messages[index + 1] if index + 1 < len(messages) else None
            if following is not None:  # a tool's answer follows a call (DPO outputs end there)
                assert following["role"] == "tool"
                assert following["tool_call_id"] == call["id"]
            seen["tool_calls"] += 1


def test_training_files_have_each_methods_shape():
    world = conftest_world()
    by_method = _data_files_by_method(world)
    assert set(by_method) == {"supervised", "dpo", "reinforcement"}
    seen: Dict[str, Counter] = {method: Counter() for method in by_method}
    for method, lines in by_method.items():
        for line in lines:
            example = json.loads(line)
            compact = json.dumps(example, separators=(",", ":"), ensure_ascii=False).encode()
            assert compact == line  # compact JSON lines
            counts = seen[method]
            if method == "supervised":
                assert set(example) <= {"messages", "tools", "parallel_tool_calls"}
                _check_chat(example["messages"], counts)
                assert example["messages"][-1]["role"] == "assistant"
                if "parallel_tool_calls" in example:
                    counts[f"parallel {example['parallel_tool_calls']}"] += 1
            elif method == "dpo":
                assert set(example) == {"input", "preferred_output", "non_preferred_output"}
                assert set(example["input"]) <= {"messages", "tools"}
                _check_chat(example["input"]["messages"], counts)
                for output in ("preferred_output", "non_preferred_output"):
                    (answer,) = example[output]
                    assert answer["role"] == "assistant"
                _check_chat(example["preferred_output"], counts)
            else:
                assert {"messages", "correct_answer", "difficulty"} <= set(example)
                assert set(example) - {"messages", "tools"} == {"correct_answer", "difficulty"}
                assert example["messages"][-1]["role"] == "user"
                _check_chat(example["messages"], counts)
            counts["tools"] += "tools" in example or "tools" in example.get("input", {})
    assert set(seen["supervised"]) >= {
        "system",
        "developer",
        "user",
        "assistant",
        "tool",
        "weight 0",
        "weight 1",
        "tool_calls",
        "parallel True",
        "parallel False",
        "tools",
    }
    assert set(seen["dpo"]) >= {"system", "developer", "user", "tool_calls", "tools"}
    assert set(seen["reinforcement"]) >= {"system", "developer", "user", "tools"}
    again = conftest_world().truth_training_files()  # deterministic from the seed
    assert again == world.truth_training_files()
    referenced = {
        f for j in world.truth_jobs() for f in (j["training_file"], j["validation_file"]) if f
    }
    assert set(again) == referenced - world.deleted_file_ids()


def _assert_quirks(world: FineTuningWorld) -> None:
    quirks = world.quirk_files()
    assert set(quirks) == QUIRK_NAMES and len(set(quirks.values())) == len(QUIRK_NAMES)
    contents = world.truth_training_files()
    assert set(quirks.values()) <= set(contents)  # existing files jobs name
    for file_id, content in contents.items():
        assert world.get_file(file_id)["bytes"] == len(content)
        if file_id not in quirks.values():  # plain: \n after every line, ASCII, all JSON
            assert content.endswith(b"\n") and b"\r" not in content
            assert content.isascii() and not content.startswith(BOM)
            assert all(json.loads(line) for line in _jsonl(content))
    crlf = contents[quirks["crlf"]]
    assert crlf.endswith(b"\r\n") and crlf.count(b"\r\n") == crlf.count(b"\n") > 10
    no_newline = contents[quirks["no_final_newline"]]
    assert not no_newline.endswith(b"\n") and no_newline.endswith(b"}") and b"\r" not in no_newline
    u2028 = contents[quirks["u2028_emoji"]]
    assert "\u2028".encode() in u2028 and EMOJI in u2028
    assert b"\\u2028" not in u2028 and b"\\ud83d" not in u2028  # raw, not escaped
    text = u2028.decode()
    assert len(text.splitlines()) > len(_jsonl(u2028))  # what splitlines() gets wrong
    assert contents[quirks["bom"]].startswith(BOM)
    assert [f for f, c in contents.items() if c.startswith(BOM)] == [quirks["bom"]]
    for name in ("crlf", "no_final_newline", "u2028_emoji", "bom"):
        assert all(json.loads(line) for line in _jsonl(contents[quirks[name]]))
    invalid = contents[quirks["invalid_lines"]]
    lines = _jsonl(invalid)
    assert invalid.endswith(b"\n") and lines.count(b"") == 1

    def parses(line: bytes) -> bool:
        try:
            json.loads(line)
        except ValueError:
            return False
        return True

    (broken,) = [line for line in lines if line and not parses(line)]
    assert broken.startswith(b'{"messages"')  # a line cut off, between valid ones
    assert 0 < lines.index(broken) < len(lines) - 1 and 0 < lines.index(b"") < len(lines) - 1
    users = [j for j in world.truth_jobs() if j["training_file"] == quirks["invalid_lines"]]
    failed = [j for j in users if j["status"] == "failed"]
    assert failed and all(j["error"]["code"] == "invalid_training_file" for j in failed)
    assert {j["status"] for j in users} <= {"failed", "validating_files"}  # none trained on it


def test_default_world_files_carry_every_quirk_of_real_uploads():
    world = conftest_world()
    _assert_quirks(world)
    quirks = world.quirk_files()
    jobs = list(reversed(world.truth_jobs()))  # where the default world puts them, oldest first
    assert (jobs[0]["training_file"], jobs[0]["validation_file"]) == (
        quirks["crlf"],
        quirks["no_final_newline"],
    )
    assert (jobs[1]["status"], jobs[1]["training_file"]) == ("failed", quirks["invalid_lines"])
    assert (jobs[2]["method"]["type"], jobs[2]["training_file"]) == (
        "reinforcement",
        quirks["u2028_emoji"],
    )
    assert jobs[3]["validation_file"] == quirks["bom"]


@pytest.mark.parametrize("jobs", [8, 9, 10, 20])
def test_every_world_of_eight_jobs_or_more_has_the_quirks(jobs):
    for seed in range(5):
        _assert_quirks(FineTuningWorld(seed=seed, jobs=jobs))


def test_a_failed_job_sharing_its_file_gets_one_of_its_own():
    # seed 4, 10 jobs: the failed job's training file is also a succeeded job's
    world = FineTuningWorld(seed=4, jobs=10)
    _assert_quirks(world)
    file_id = world.quirk_files()["invalid_lines"]
    (job,) = [j for j in world.truth_jobs() if j["training_file"] == file_id]
    assert job["status"] == "failed"
    messages = [e["message"] for e in world.truth_events()[job["id"]]]
    assert f"Validating training file: {file_id}" in {m.split(" and ")[0] for m in messages}
    assert world.get_file(file_id)["created_at"] < job["created_at"]
    assert file_id in {f["id"] for f in world.truth_files()}


def test_big_training_file_is_about_the_size_asked_for():
    size = 5_000_000
    plain = conftest_world()
    world = conftest_world(big_training_file_bytes=size)
    file_id = world.big_training_file()
    content = world.file_content(file_id)
    assert size <= len(content) < size + 2_000 and content.endswith(b"\n")
    assert world.get_file(file_id)["bytes"] == len(content)
    assert all(json.loads(line) for line in _jsonl(content))
    (job,) = [j for j in world.truth_jobs() if j["training_file"] == file_id]
    assert job["status"] == "succeeded"
    assert file_id not in world.quirk_files().values()
    # the rest of the world is the same
    assert world.truth_jobs() == plain.truth_jobs()
    others = {k: v for k, v in world.truth_training_files().items() if k != file_id}
    assert others == {k: v for k, v in plain.truth_training_files().items() if k != file_id}
    assert plain.big_training_file() is None
    with pytest.raises(ValueError):
        FineTuningWorld(big_training_file_bytes=0)


# ---- models -------------------------------------------------------------------------------

TODAY = datetime.date(2026, 3, 1)


def _in_days(days: int) -> str:
    return (TODAY + datetime.timedelta(days=days)).isoformat()


def test_models_list_base_fine_tuned_and_checkpoint_models():
    world = conftest_world(today=TODAY)
    models = world.truth_models()
    assert len({m["id"] for m in models}) == len(models)
    assert all(set(m) == {"id", "object", "created", "owned_by", "shutdown_date"} for m in models)
    assert {m["object"] for m in models} == {"model"}
    base = {m["id"]: m["shutdown_date"] for m in models if m["owned_by"] == "system"}
    assert list(base) == [m["id"] for m in models[: len(base)]]  # base models first
    assert base == {
        "gpt-4o-mini-2024-07-18": _in_days(44),
        "gpt-4.1-mini-2025-04-14": None,
        "gpt-4o-2024-08-06": _in_days(-39),
        "o4-mini-2025-04-16": None,
        "gpt-4.1-nano-2025-04-14": None,
        "gpt-3.5-turbo-1106": _in_days(-400),
    }
    assert set(BASE_MODELS) | {REINFORCEMENT_MODEL} <= set(base)
    # the base models jobs use: a date ahead, a date passed, none
    used = {base[root_model(j["model"])] for j in world.truth_jobs()}
    assert {d is None for d in used} == {True, False}
    assert {d < TODAY.isoformat() for d in used if d} == {True, False}
    jobs = list(reversed(world.truth_jobs()))  # oldest first
    (deleted,) = world.deleted_model_ids()
    own = world.own_date_model_id()
    expected = []
    for job in jobs:
        if job["status"] == "succeeded" and job["fine_tuned_model"] != deleted:
            date = _in_days(21) if job["fine_tuned_model"] == own else None
            expected.append(
                (job["fine_tuned_model"], job["finished_at"], world.organization_id, date)
            )
        for checkpoint in reversed(world.list_checkpoints(job["id"], None, 100)[0]):
            expected.append(
                (
                    checkpoint["fine_tuned_model_checkpoint"],
                    checkpoint["created_at"],
                    world.organization_id,
                    None,
                )
            )
    listed = [(m["id"], m["created"], m["owned_by"], m["shutdown_date"]) for m in models]
    assert listed[len(base) :] == expected
    # the one fine-tuned model with its own date: not its base's
    assert [m["id"] for m in models[len(base) :] if m["shutdown_date"]] == [own]
    assert base[root_model(own)] != _in_days(21)
    # deleted by its owner: its job still names it
    assert deleted in {j["fine_tuned_model"] for j in jobs} and deleted != own
    with pytest.raises(UnknownModelError):
        world.get_model(deleted)
    assert world.get_model(own) == next(m for m in models if m["id"] == own)
    assert conftest_world().today == datetime.date.today()


def test_a_job_trained_on_a_fine_tuned_model_keeps_the_root_in_its_names():
    world = conftest_world()
    child = world.get_job(world.fine_tuned_base_job_id())
    parents = [j for j in world.truth_jobs() if j["fine_tuned_model"] == child["model"]]
    (parent,) = parents
    assert parent["status"] == child["status"] == "succeeded"
    assert parent["finished_at"] <= child["created_at"]  # the model existed when it started
    root = parent["model"]
    assert child["model"].startswith(f"ft:{root}:sandbox::") and root_model(child["model"]) == root
    assert child["fine_tuned_model"].startswith(f"ft:{root}:sandbox::")
    assert child["fine_tuned_model"] != child["model"]
    names = [c["fine_tuned_model_checkpoint"] for c in world.truth_checkpoints()]
    mine = [c for c in world.truth_checkpoints() if c["fine_tuning_job_id"] == child["id"]]
    assert mine and all(
        c["fine_tuned_model_checkpoint"]
        == f"ft:{root}:sandbox::{child['id'][-8:]}:ckpt-step-{c['step_number']}"
        for c in mine
    )
    assert all(name.count(":") == 5 for name in names)
    assert [j["id"] for j in world.truth_jobs() if j["model"].startswith("ft:")] == [child["id"]]
    assert child["fine_tuned_model"] in {m["id"] for m in world.truth_models()}
    assert root_model("gpt-4o-2024-08-06") == "gpt-4o-2024-08-06"
    with pytest.raises(LookupError):
        FineTuningWorld(seed=0, jobs=0).fine_tuned_base_job_id()


def test_shutdown_dates_get_announced_as_time_passes():
    world = conftest_world(today=TODAY)

    def date_of(model_id: str) -> Any:
        return world.get_model(model_id)["shutdown_date"]

    assert REINFORCEMENT_MODEL in {j["model"] for j in world.truth_jobs()}
    assert date_of(REINFORCEMENT_MODEL) is None
    world.advance(seconds=1000, new_checkpoints=0)
    assert date_of(REINFORCEMENT_MODEL) is None
    world.advance(seconds=800, new_checkpoints=0)  # 1800 s in all
    assert date_of(REINFORCEMENT_MODEL) == _in_days(75)
    world.announce_shutdown("gpt-4.1-mini-2025-04-14", "2026-09-30")
    assert date_of("gpt-4.1-mini-2025-04-14") == "2026-09-30"
    world.announce_shutdown(REINFORCEMENT_MODEL, None)  # withdrawn
    assert date_of(REINFORCEMENT_MODEL) is None
    checkpoint = world.truth_checkpoints()[0]["fine_tuned_model_checkpoint"]
    world.announce_shutdown(checkpoint, "2026-04-01")
    assert date_of(checkpoint) == "2026-04-01"
    for bad in ("2026-02-30", "2026-3-1", "20260301", "soon"):
        with pytest.raises(ValueError):
            world.announce_shutdown(checkpoint, bad)
    with pytest.raises(UnknownModelError):
        world.announce_shutdown("gpt-9", "2026-04-01")
    world.delete_model(checkpoint)
    assert checkpoint in world.deleted_model_ids()
    assert checkpoint not in {m["id"] for m in world.truth_models()}
    world.advance(seconds=600, finish=True)  # jobs that succeed now list their models
    succeeded = {j["fine_tuned_model"] for j in world.truth_jobs() if j["status"] == "succeeded"}
    assert succeeded - world.deleted_model_ids() <= {m["id"] for m in world.truth_models()}
