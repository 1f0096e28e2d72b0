"""The sandbox keeps the contract: its responses validate against the OpenAI spec excerpt, and
the official `openai` SDK pages through it and sees exactly its data (jobs, checkpoints, events,
files and their contents); its rate limit answers as the API does."""

from __future__ import annotations

import base64
import csv
import io
from pathlib import Path
from typing import Any, Dict, Iterator, List

import openai
import pytest
import requests
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from fake_openai import SandboxServer
from fake_openai.faults import FaultPlan
from tests.conftest import API_KEY, LONG_JOB

SPEC_PATH = Path(__file__).resolve().parent.parent / "fake_openai" / "spec" / "fine_tuning.yaml"
SPEC_URI = "urn:openai:fine-tuning-spec"


def _openapi_30_bounds_to_31(node: Any) -> Any:
    """The excerpt keeps one OpenAPI 3.0 form inside 3.1: `exclusiveMinimum: true` beside
    `minimum`. JSON Schema 2020-12 reads it as the number 1, so it is rewritten, not dropped."""
    if isinstance(node, dict):
        node = {k: _openapi_30_bounds_to_31(v) for k, v in node.items()}
        if node.get("exclusiveMinimum") is True and "minimum" in node:
            node["exclusiveMinimum"] = node.pop("minimum")
        return node
    if isinstance(node, list):
        return [_openapi_30_bounds_to_31(v) for v in node]
    return node


@pytest.fixture(scope="module")
def validators() -> Dict[str, Draft202012Validator]:
    spec = _openapi_30_bounds_to_31(yaml.safe_load(SPEC_PATH.read_text()))
    registry = Registry().with_resource(SPEC_URI, Resource(spec, specification=DRAFT202012))
    names = [
        "ListPaginatedFineTuningJobsResponse",
        "FineTuningJob",
        "ErrorResponse",
        "ListFineTuningJobCheckpointsResponse",
        "ListFineTuningJobEventsResponse",
        "OpenAIFile",
    ]
    validators = {
        name: Draft202012Validator(
            {"$ref": f"{SPEC_URI}#/components/schemas/{name}"}, registry=registry
        )
        for name in names
    }
    # the download's body, as the spec types it
    content = spec["paths"]["/files/{file_id}/content"]["get"]["responses"]["200"]["content"]
    validators["content"] = Draft202012Validator(content["application/json"]["schema"])
    return validators


def _get(sandbox, path: str, key: str = API_KEY, **params: Any) -> requests.Response:
    return requests.get(
        f"{sandbox.base_url}/{path}",
        params=params,
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )


def _pages(sandbox, path: str, limit: int) -> Iterator[Dict[str, Any]]:
    after = None
    while True:
        params: Dict[str, Any] = {"limit": limit}
        if after:
            params["after"] = after
        response = _get(sandbox, path, **params)
        assert response.status_code == 200
        body = response.json()
        yield body
        if not body["has_more"]:
            return
        after = body["data"][-1]["id"]


def _validate(validator: Draft202012Validator, body: Any) -> None:
    errors = sorted(validator.iter_errors(body), key=str)
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]


def _every_method_and_status(world) -> None:
    """Jobs of every method that trained (the generated reinforcement job may not have), and
    jobs in motion: events of every kind."""
    world.add_job(status="succeeded", method="reinforcement", checkpoints=2)
    world.add_job(status="running", method="dpo", checkpoints=1, validation=False)
    world.add_job(status="running", method="reinforcement", checkpoints=1, validation=False)
    world.advance(seconds=600, new_checkpoints=2)
    world.add_job(status="validating_files")


def test_every_response_validates_against_the_spec(sandbox, world, validators):
    _every_method_and_status(world)
    statuses = set()
    for limit in (1, 5, 100):
        listed: List[str] = []
        for body in _pages(sandbox, "fine_tuning/jobs", limit):
            _validate(validators["ListPaginatedFineTuningJobsResponse"], body)
            assert "first_id" not in body and "last_id" not in body  # only checkpoint pages
            listed += [job["id"] for job in body["data"]]
        assert listed == world.job_ids()
    for job_id in world.job_ids():
        job = _get(sandbox, f"fine_tuning/jobs/{job_id}").json()
        _validate(validators["FineTuningJob"], job)
        statuses.add(job["status"])
        for body in _pages(sandbox, f"fine_tuning/jobs/{job_id}/checkpoints", 3):
            _validate(validators["ListFineTuningJobCheckpointsResponse"], body)
            ids = [c["id"] for c in body["data"]]
            assert (body["first_id"], body["last_id"]) == (
                (ids[0], ids[-1]) if ids else (None, None)
            )
        for limit in (7, 100):
            seen = []
            for body in _pages(sandbox, f"fine_tuning/jobs/{job_id}/events", limit):
                _validate(validators["ListFineTuningJobEventsResponse"], body)
                assert set(body) == {"object", "data", "has_more"}  # no first_id / last_id
                seen += body["data"]
            assert seen == world.truth_events()[job_id]
    assert statuses >= {"validating_files", "queued", "running", "succeeded", "failed", "cancelled"}
    methods = {j["method"]["type"] for j in world.truth_jobs()}
    assert methods == {"supervised", "dpo", "reinforcement"}
    kinds = {
        (e["type"], e["level"], e.get("data", {}).get("scores") is not None)
        for events in world.truth_events().values()
        for e in events
    }
    assert kinds >= {
        ("message", "info", False),
        ("message", "warn", False),
        ("message", "error", False),
        ("metrics", "info", False),
        ("metrics", "info", True),
    }


def _decoded_csv(body: bytes) -> List[Dict[str, Any]]:
    text = body if body.startswith(b"step,") else base64.b64decode(body, validate=True)
    rows = list(csv.DictReader(io.StringIO(text.decode())))
    return [
        {k: (int(v) if k == "step" else float(v) if v else None) for k, v in r.items()}
        for r in rows
    ]


def test_file_responses_validate_and_content_is_the_csv(sandbox, world, validators):
    _every_method_and_status(world)
    world.finish_running_jobs()
    files = world.truth_files()
    assert {f["purpose"] for f in files} == {"fine-tune", "fine-tune-results"}
    truth: Dict[str, List[dict]] = {}
    for row in world.truth_results():
        truth.setdefault(row.pop("file_id"), []).append(row)
    plain = 0
    for record in files:
        response = _get(sandbox, f"files/{record['id']}")
        assert response.status_code == 200
        _validate(validators["OpenAIFile"], response.json())
        assert response.json() == record
        content = _get(sandbox, f"files/{record['id']}/content")
        assert content.status_code == 200
        assert content.headers["Content-Type"] == "application/octet-stream"
        assert content.content == world.file_content(record["id"])
        assert int(content.headers["Content-Length"]) == record["bytes"]
        _validate(validators["content"], content.text)  # a string body, as the spec says
        if record["purpose"] == "fine-tune-results":
            plain += content.content.startswith(b"step,")
            rows = [
                {k: v for k, v in r.items() if k != "fine_tuning_job_id"}
                for r in truth[record["id"]]
            ]
            assert _decoded_csv(content.content) == rows
    assert plain == 1 and len(truth) >= 5
    (deleted,) = world.deleted_file_ids()
    for path in (f"files/{deleted}", f"files/{deleted}/content"):
        response = _get(sandbox, path)
        assert response.status_code == 404
        _validate(validators["ErrorResponse"], response.json())
        assert response.json() == {
            "error": {
                "message": f"No such File object: {deleted}",
                "type": "invalid_request_error",
                "param": "id",
                "code": None,
            }
        }


@pytest.mark.parametrize(
    ("path", "key", "params", "status"),
    [
        ("fine_tuning/jobs", "sk-wrong", {}, 401),
        ("fine_tuning/jobs/ftjob-missing", API_KEY, {}, 404),
        ("fine_tuning/jobs/ftjob-missing/checkpoints", API_KEY, {}, 404),
        ("fine_tuning/jobs/ftjob-missing/events", API_KEY, {}, 404),
        ("files/file-missing", API_KEY, {}, 404),
        ("files/file-missing/content", API_KEY, {}, 404),
        ("files/file-missing", "sk-wrong", {}, 401),
        ("fine_tuning/jobs", API_KEY, {"limit": 0}, 400),
        ("fine_tuning/jobs", API_KEY, {"limit": 101}, 400),
        ("fine_tuning/jobs", API_KEY, {"limit": "ten"}, 400),
        ("fine_tuning/jobs", API_KEY, {"after": "ftjob-nosuch"}, 400),
    ],
)
def test_errors_have_openai_error_bodies(sandbox, validators, path, key, params, status):
    response = _get(sandbox, path, key=key, **params)
    assert response.status_code == status
    _validate(validators["ErrorResponse"], response.json())


def test_default_limits_follow_the_spec(sandbox, world):
    job_id = max(world.job_ids(), key=lambda j: len(world.list_checkpoints(j, None, 100)[0]))
    for _ in range(12):
        world.add_checkpoint(job_id)
    assert len(_get(sandbox, "fine_tuning/jobs").json()["data"]) == min(20, len(world.job_ids()))
    assert len(_get(sandbox, f"fine_tuning/jobs/{job_id}/checkpoints").json()["data"]) == 10


def test_missing_bearer_token_is_401(sandbox):
    response = requests.get(f"{sandbox.base_url}/fine_tuning/jobs", timeout=10)
    assert response.status_code == 401


def test_official_sdk_sees_exactly_the_sandbox_truth(sandbox, world):
    client = openai.OpenAI(api_key=API_KEY, base_url=sandbox.base_url, max_retries=0)
    jobs = list(client.fine_tuning.jobs.list(limit=5))  # the SDK follows `after` itself
    assert [(j.id, j.status, j.created_at) for j in jobs] == [
        (j["id"], j["status"], j["created_at"]) for j in world.truth_jobs()
    ]
    truth = {c["id"]: c for c in world.truth_checkpoints()}
    seen = {}
    for job in jobs:
        pages = client.fine_tuning.jobs.checkpoints.list(job.id, limit=3)
        ids = [c.id for c in pages]
        assert ids == [c["id"] for c in world.list_checkpoints(job.id, None, 100)[0]]
        for checkpoint in client.fine_tuning.jobs.checkpoints.list(job.id, limit=100):
            seen[checkpoint.id] = checkpoint.model_dump(exclude_unset=True)
    assert seen == truth
    events = list(client.fine_tuning.jobs.list_events(jobs[0].id, limit=2))
    assert [e.id for e in events] == [e["id"] for e in world.list_events(jobs[0].id, None, 100)[0]]


@pytest.mark.parametrize("world", [LONG_JOB], indirect=True)
def test_official_sdk_sees_every_event_and_file(sandbox, world):
    _every_method_and_status(world)
    client = openai.OpenAI(api_key=API_KEY, base_url=sandbox.base_url, max_retries=0)
    truth = world.truth_events()
    assert max(len(events) for events in truth.values()) > 1000  # 10+ pages at limit 100
    for job_id, events in truth.items():
        pages = client.fine_tuning.jobs.list_events(job_id, limit=100)
        assert [e.model_dump(exclude_unset=True) for e in pages] == events
    small = min(truth, key=lambda j: (len(truth[j]) < 20, len(truth[j])))
    assert [e.id for e in client.fine_tuning.jobs.list_events(small, limit=3)] == [
        e["id"] for e in truth[small]
    ]
    for record in world.truth_files():
        assert client.files.retrieve(record["id"]).model_dump(exclude_unset=True) == record
        assert client.files.content(record["id"]).content == world.file_content(record["id"])
    for file_id in world.deleted_file_ids():
        with pytest.raises(openai.NotFoundError):
            client.files.retrieve(file_id)
        with pytest.raises(openai.NotFoundError):
            client.files.content(file_id)


def test_sdk_sees_auth_and_not_found_errors(sandbox):
    bad = openai.OpenAI(api_key="sk-wrong", base_url=sandbox.base_url, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.fine_tuning.jobs.list()
    good = openai.OpenAI(api_key=API_KEY, base_url=sandbox.base_url, max_retries=0)
    with pytest.raises(openai.NotFoundError):
        good.fine_tuning.jobs.retrieve("ftjob-missing")


def test_rate_limit_answers_429_with_retry_after_ms(world, validators):
    # refills slower than 20 keep-alive requests take, so the counts are exact
    with SandboxServer(world, api_key=API_KEY, rate_limit=1, rate_burst=5) as sandbox:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {API_KEY}"
        url = f"{sandbox.base_url}/fine_tuning/jobs"
        responses = [session.get(url, params={"limit": 1}, timeout=10) for _ in range(20)]
        assert [r.status_code for r in responses] == [200] * 5 + [429] * 15
        for response in responses[5:]:
            _validate(validators["ErrorResponse"], response.json())
            assert response.json()["error"] == {
                "message": "Rate limit reached for requests.",
                "type": "requests",
                "param": None,
                "code": "rate_limit_exceeded",
            }
            assert 1 <= int(response.headers["retry-after-ms"]) <= 1000
        stats = requests.get(f"{sandbox.root_url}/_sandbox/stats", timeout=10).json()
        assert stats["rate_limited"] == 15 and stats["total"] == 20
        # the control route: a new bucket of 4, refilled at 2 per second; then no limit
        control = f"{sandbox.root_url}/_sandbox/rate_limit"
        limit = requests.post(control, params={"rps": 2, "burst": 4}, timeout=10).json()
        assert limit == {"rps": 2.0, "burst": 4.0}
        file_url = f"{sandbox.base_url}/files/{world.truth_files()[0]['id']}"
        admitted = [session.get(file_url, timeout=10).status_code for _ in range(20)]
        assert admitted.count(200) == 4 and admitted.count(429) == 16
        assert requests.post(control, params={"rps": 0}, timeout=10).json() == {"rps": 0}
        assert all(session.get(url, timeout=10).status_code == 200 for _ in range(20))
        assert sandbox.stats.rate_limited == 31


def test_sdk_waits_out_the_rate_limit(world):
    job_id = max(world.truth_events(), key=lambda j: len(world.truth_events()[j]))
    # 2 per second: the next page is asked for well within the half second the bucket refills in
    with SandboxServer(world, api_key=API_KEY, rate_limit=2, rate_burst=1) as sandbox:
        client = openai.OpenAI(api_key=API_KEY, base_url=sandbox.base_url, max_retries=10)
        events = [e.id for e in client.fine_tuning.jobs.list_events(job_id, limit=100)]
        assert events == [e["id"] for e in world.truth_events()[job_id]]
        assert sandbox.stats.rate_limited > 0  # it was limited, and honoured retry-after-ms


@pytest.mark.parametrize("mode", ["empty_page", "no_data", "item_without_id", "repeat_cursor"])
def test_events_misbehave_like_other_lists(sandbox, world, mode):
    job_id = max(world.truth_events(), key=lambda j: len(world.truth_events()[j]))
    sandbox.misbehave["events"] = mode
    first = _get(sandbox, f"fine_tuning/jobs/{job_id}/events", limit=5).json()
    truth = world.truth_events()[job_id]
    if mode == "empty_page":
        assert first == {"object": "list", "data": [], "has_more": True}
    elif mode == "no_data":
        assert first == {"object": "list", "has_more": True}
    elif mode == "item_without_id":
        assert "id" not in first["data"][0] and first["data"][1:] == truth[1:5]
    else:
        after = truth[4]["id"]
        again = _get(sandbox, f"fine_tuning/jobs/{job_id}/events", limit=5, after=after).json()
        assert first["data"] == again["data"] == truth[:5] and again["has_more"]
    assert _get(sandbox, f"fine_tuning/jobs/{job_id}/checkpoints").json()["data"]  # others not


def test_fault_plans_can_target_file_routes(sandbox, world):
    sandbox.faults = FaultPlan(rate=1.0, kinds=["503"], routes=["content"])
    file_id = world.truth_files()[0]["id"]
    assert _get(sandbox, f"files/{file_id}").status_code == 200
    assert _get(sandbox, f"files/{file_id}/content").status_code == 503
    assert sandbox.stats.by_route == {"GET /v1/files/{id}": 1, "GET /v1/files/{id}/content": 1}
    with pytest.raises(ValueError):
        FaultPlan(routes=["files"])


def test_truth_control_has_events_files_and_results(sandbox, world):
    truth = requests.get(f"{sandbox.root_url}/_sandbox/truth", timeout=30).json()
    assert truth["events"] == world.truth_events()
    assert truth["files"] == world.truth_files()
    assert truth["results"] == world.truth_results()
    assert truth["jobs"] == world.truth_jobs()
