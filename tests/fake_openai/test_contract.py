"""The sandbox keeps the contract: its responses validate against the OpenAI spec excerpt, and
the official `openai` SDK pages through it and sees exactly its data (jobs, checkpoints, events,
files and their contents, models); its rate limit answers as the API does, and its models as
OpenAI and Azure OpenAI list them."""

from __future__ import annotations

import base64
import csv
import datetime
import io
import json
from typing import Any, Dict, Iterator, List
from urllib.parse import quote

import openai
import pytest
import requests
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from fake_openai import SandboxServer
from fake_openai.faults import FaultPlan
from tests.helpers import API_KEY, LONG_JOB, REPO

SPEC_PATH = REPO / "fake_openai" / "spec" / "fine_tuning.yaml"
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
        "ListModelsResponse",
        "Model",
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
    assert truth["models"] == world.truth_models()


# ---- models -------------------------------------------------------------------------------


def _in_days(world, days: int) -> str:
    return (world.today + datetime.timedelta(days=days)).isoformat()


def _not_found(model_id: str) -> Dict[str, Any]:
    return {
        "error": {
            "message": f"The model `{model_id}` does not exist or you do not have access to it.",
            "type": "invalid_request_error",
            "param": None,
            "code": "model_not_found",
        }
    }


def test_models_responses_validate_against_the_spec(sandbox, world, validators):
    truth = world.truth_models()
    response = _get(sandbox, "models", limit=1, after=truth[0]["id"])  # no paging: all of it
    assert response.status_code == 200
    _validate(validators["ListModelsResponse"], response.json())
    assert response.json() == {"object": "list", "data": truth}
    for model in truth:
        for path in (model["id"], quote(model["id"], safe="")):  # colons as is, or as %3A
            one = _get(sandbox, f"models/{path}")
            assert one.status_code == 200
            _validate(validators["Model"], one.json())
            assert one.json() == model
    for missing in ("gpt-9", *world.deleted_model_ids()):
        response = _get(sandbox, f"models/{missing}")
        assert response.status_code == 404
        _validate(validators["ErrorResponse"], response.json())
        assert response.json() == _not_found(missing)


def test_sdk_sees_the_models_and_every_training_file_byte_for_byte(sandbox, world):
    client = openai.OpenAI(api_key=API_KEY, base_url=sandbox.base_url, max_retries=0)
    truth = world.truth_models()
    assert [m.id for m in client.models.list()] == [m["id"] for m in truth]
    assert [m.model_dump() for m in client.models.list()] == truth
    checkpoint = next(m for m in truth if ":ckpt-step-" in m["id"])
    assert client.models.retrieve(checkpoint["id"]).model_dump() == checkpoint
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve(next(iter(world.deleted_model_ids())))
    contents = world.truth_training_files()
    assert set(world.quirk_files().values()) <= set(contents) and len(contents) >= 15
    for file_id, content in contents.items():
        assert client.files.content(file_id).read() == content
    for record in world.truth_files():  # `bytes` is the length of what /content serves
        served = _get(sandbox, f"files/{record['id']}/content").content
        assert _get(sandbox, f"files/{record['id']}").json()["bytes"] == len(served)
        assert client.files.retrieve(record["id"]).bytes == len(served)


def test_quirk_files_are_served_with_their_quirks(sandbox, world):
    quirks = world.quirk_files()
    body = {
        name: _get(sandbox, f"files/{file_id}/content").content for name, file_id in quirks.items()
    }
    assert body["crlf"].count(b"\r\n") == body["crlf"].count(b"\n") > 0
    assert body["crlf"].endswith(b"\r\n")
    assert not body["no_final_newline"].endswith(b"\n")
    assert "\u2028".encode() in body["u2028_emoji"] and "\U0001f680".encode() in body["u2028_emoji"]
    assert body["bom"].startswith(b"\xef\xbb\xbf") and not body["crlf"].startswith(b"\xef")
    lines = body["invalid_lines"].split(b"\n")[:-1]
    assert lines.count(b"") == 1

    def not_json(line: bytes) -> bool:
        try:
            json.loads(line)
        except ValueError:
            return True
        return False

    assert sum(not_json(line) for line in lines if line) == 1
    (job,) = [
        j
        for j in world.truth_jobs()
        if j["training_file"] == quirks["invalid_lines"] and j["status"] == "failed"
    ]
    served = _get(sandbox, f"fine_tuning/jobs/{job['id']}").json()
    assert (served["status"], served["error"]["code"]) == ("failed", "invalid_training_file")


FORBIDDEN = {
    "error": {
        "message": "You have insufficient permissions for this operation. Missing scopes:"
        " api.model.read.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
}


def test_models_forbidden_to_a_restricted_key(sandbox, world, validators):
    model_id = world.truth_models()[0]["id"]
    sandbox.models_forbidden = True
    for path in ("models", f"models/{model_id}"):
        response = _get(sandbox, path)
        assert response.status_code == 403
        _validate(validators["ErrorResponse"], response.json())
        assert response.json() == FORBIDDEN
    azure = requests.get(f"{sandbox.root_url}/openai/v1/models", headers={"api-key": API_KEY})
    assert (azure.status_code, azure.json()) == (403, FORBIDDEN)
    assert _get(sandbox, "fine_tuning/jobs").status_code == 200  # other routes unaffected
    file_id = world.truth_files()[0]["id"]
    assert _get(sandbox, f"files/{file_id}/content").status_code == 200
    client = openai.OpenAI(api_key=API_KEY, base_url=sandbox.base_url, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        client.models.list()
    control = f"{sandbox.root_url}/_sandbox/models"
    assert requests.post(control, params={"forbidden": "false"}, timeout=10).json() == {
        "forbidden": False
    }
    assert _get(sandbox, "models").status_code == 200
    assert requests.post(control, params={"forbidden": "true"}, timeout=10).json() == {
        "forbidden": True
    }
    assert sandbox.models_forbidden and _get(sandbox, "models").status_code == 403


def _midnight(date: str) -> int:
    return int(datetime.datetime.fromisoformat(date).replace(tzinfo=datetime.UTC).timestamp())


def test_azure_lists_the_same_models_in_its_shape(sandbox, world):
    truth = world.truth_models()
    jobs = {j["id"]: j for j in world.truth_jobs()}
    by_model = {j["fine_tuned_model"]: j for j in jobs.values() if j["fine_tuned_model"]}
    headers = {"api-key": API_KEY}
    version = {"api-version": "2025-04-01-preview"}
    v1 = requests.get(f"{sandbox.root_url}/openai/v1/models", headers=headers, timeout=10)
    dated = requests.get(f"{sandbox.root_url}/openai/models", headers=headers, params=version)
    assert v1.status_code == dated.status_code == 200
    assert v1.json() == dated.json() == {"object": "list", "data": world.list_models(azure=True)}
    listed = v1.json()["data"]
    assert [m["id"] for m in listed] == [m["id"] for m in truth]
    for azure, model in zip(listed, truth, strict=True):
        common = {"id", "object", "created_at", "status", "lifecycle_status", "capabilities"}
        fine_tuned = model["owned_by"] != "system"
        assert set(azure) == common | {"deprecation"} | (
            {"model", "fine_tune"} if fine_tuned else set()
        )
        assert (azure["object"], azure["created_at"]) == ("model", model["created"])
        assert azure["lifecycle_status"] == "generally-available"
        assert azure["capabilities"]["inference"] is True
        assert isinstance(azure["capabilities"]["fine_tune"], bool)
        date = model["shutdown_date"]
        assert set(azure["deprecation"]) == ({"fine_tune", "inference"} if date else {"fine_tune"})
        if date:
            assert azure["deprecation"]["inference"] == _midnight(date)
            assert azure["deprecation"]["fine_tune"] <= azure["deprecation"]["inference"]
        if fine_tuned:
            job = jobs[azure["fine_tune"]]
            assert azure["model"] == job["model"]
            if ":ckpt-step-" not in model["id"]:
                assert by_model[model["id"]]["id"] == job["id"]
    assert {m["capabilities"]["fine_tune"] for m in listed} == {True, False}
    child = jobs[world.fine_tuned_base_job_id()]
    (entry,) = [m for m in listed if m["id"] == child["fine_tuned_model"]]
    assert entry["model"] == child["model"] and entry["model"].startswith("ft:")
    one_id = quote(child["fine_tuned_model"], safe="")
    one = requests.get(
        f"{sandbox.root_url}/openai/models/{one_id}", headers=headers, params=version
    )
    assert one.json() == entry
    one = requests.get(f"{sandbox.root_url}/openai/v1/models/{one_id}", headers=headers)
    assert one.json() == entry
    missing = requests.get(f"{sandbox.root_url}/openai/models", headers=headers, timeout=10)
    assert missing.status_code == 400  # the dated form needs api-version


def test_shutdown_date_announced_after_time_passes(sandbox, world):
    model_id = "o4-mini-2025-04-16"
    assert model_id in {j["model"] for j in world.truth_jobs()}

    def served_date(name: str) -> Any:
        return _get(sandbox, f"models/{name}").json()["shutdown_date"]

    assert served_date(model_id) is None
    advance = f"{sandbox.root_url}/_sandbox/advance"
    requests.post(advance, params={"seconds": 600, "checkpoints": 0}, timeout=10)
    assert served_date(model_id) is None
    requests.post(advance, params={"seconds": 3000, "checkpoints": 0}, timeout=10)
    assert served_date(model_id) == _in_days(world, 75)
    listed = {m["id"]: m["shutdown_date"] for m in _get(sandbox, "models").json()["data"]}
    assert listed[model_id] == _in_days(world, 75)
    announce = f"{sandbox.root_url}/_sandbox/models/announce"
    response = requests.post(announce, params={"model": model_id, "date": "2031-05-06"})
    assert response.json()["shutdown_date"] == "2031-05-06" == served_date(model_id)
    assert requests.post(announce, params={"model": model_id}).json()["shutdown_date"] is None
    assert served_date(model_id) is None
    assert requests.post(announce, params={"model": model_id, "date": "May 6"}).status_code == 400
    response = requests.post(announce, params={"model": "gpt-9", "date": "2031-05-06"})
    assert (response.status_code, response.json()) == (404, _not_found("gpt-9"))


def test_deleted_model_is_not_listed_and_its_job_still_names_it(sandbox, world):
    (deleted,) = world.deleted_model_ids()
    assert deleted not in {m["id"] for m in _get(sandbox, "models").json()["data"]}
    assert _get(sandbox, f"models/{deleted}").status_code == 404
    named = [
        j
        for page in _pages(sandbox, "fine_tuning/jobs", 100)
        for j in page["data"]
        if j["fine_tuned_model"] == deleted
    ]
    assert len(named) == 1 and named[0]["status"] == "succeeded"
    own = world.own_date_model_id()
    assert _get(sandbox, f"models/{own}").json()["shutdown_date"] == _in_days(world, 21)


def test_job_trained_on_a_fine_tuned_model_over_http(sandbox, world):
    child = _get(sandbox, f"fine_tuning/jobs/{world.fine_tuned_base_job_id()}").json()
    jobs = [j for page in _pages(sandbox, "fine_tuning/jobs", 100) for j in page["data"]]
    (parent,) = [j for j in jobs if j["fine_tuned_model"] == child["model"]]
    root = parent["model"]
    assert child["model"].split(":")[1] == root == child["fine_tuned_model"].split(":")[1]
    checkpoints = _get(sandbox, f"fine_tuning/jobs/{child['id']}/checkpoints", limit=100).json()
    names = {c["fine_tuned_model_checkpoint"].split(":")[1] for c in checkpoints["data"]}
    assert names == {root}
    listed = {m["id"] for m in _get(sandbox, "models").json()["data"]}
    assert {child["fine_tuned_model"], parent["fine_tuned_model"]} <= listed


def test_fault_plans_can_target_the_models_routes(sandbox, world):
    sandbox.faults = FaultPlan(rate=1.0, kinds=["503"], routes=["models"])
    model_id = quote(world.truth_models()[-1]["id"], safe="")
    assert _get(sandbox, "models").status_code == 503
    assert _get(sandbox, f"models/{model_id}").status_code == 503
    assert _get(sandbox, "fine_tuning/jobs").status_code == 200
    assert sandbox.stats.by_route == {
        "GET /v1/models": 1,
        "GET /v1/models/{id}": 1,
        "GET /v1/fine_tuning/jobs": 1,
    }
