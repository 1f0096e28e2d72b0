"""The sandbox keeps the contract: its responses validate against the OpenAI spec excerpt, and
the official `openai` SDK pages through it and sees exactly its data."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterator, List

import openai
import pytest
import requests
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.conftest import API_KEY

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
    ]
    return {
        name: Draft202012Validator(
            {"$ref": f"{SPEC_URI}#/components/schemas/{name}"}, registry=registry
        )
        for name in names
    }


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


def test_every_response_validates_against_the_spec(sandbox, world, validators):
    world.advance(seconds=600, new_checkpoints=2)  # jobs in motion, events of every kind
    world.add_job(status="validating_files")
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
        for body in _pages(sandbox, f"fine_tuning/jobs/{job_id}/events", 4):
            _validate(validators["ListFineTuningJobEventsResponse"], body)
    assert statuses >= {"validating_files", "queued", "running", "succeeded", "failed", "cancelled"}


@pytest.mark.parametrize(
    ("path", "key", "params", "status"),
    [
        ("fine_tuning/jobs", "sk-wrong", {}, 401),
        ("fine_tuning/jobs/ftjob-missing", API_KEY, {}, 404),
        ("fine_tuning/jobs/ftjob-missing/checkpoints", API_KEY, {}, 404),
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


def test_sdk_sees_auth_and_not_found_errors(sandbox):
    bad = openai.OpenAI(api_key="sk-wrong", base_url=sandbox.base_url, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.fine_tuning.jobs.list()
    good = openai.OpenAI(api_key=API_KEY, base_url=sandbox.base_url, max_retries=0)
    with pytest.raises(openai.NotFoundError):
        good.fine_tuning.jobs.retrieve("ftjob-missing")
