"""The retry policy: what is retried, how long it waits, what a user sees when retries run out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests

from fake_openai import FineTuningWorld, SandboxServer
from fake_openai.faults import FaultPlan
from sources.openai_fine_tuning.http.retry import RetryPolicy
from tests.helpers import API_KEY, Loader, assert_history_equal_truth


def _response(status: int = 429, **headers: str) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers)
    return response


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "20"}, 0.02),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),  # -ms first, as the SDK
        ({"retry-after": "0"}, 0.5),  # 0 falls back to backoff
        ({"retry-after": "soon"}, 0.5),  # garbage falls back to backoff
        ({"retry-after-ms": "x", "retry-after": "2"}, 2.0),
        ({"retry-after": "120"}, 0.5),  # over 60 s is ignored, as the SDK
        ({}, 0.5),
    ],
)
def test_delay_honours_retry_after_headers(headers, expected):
    policy = RetryPolicy(backoff_base=0.5, random_fraction=lambda: 0.0)
    assert policy.delay(1, _response(**headers)) == pytest.approx(expected)


def test_delay_honours_an_http_date():
    policy = RetryPolicy(random_fraction=lambda: 0.0)
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 27 <= policy.delay(1, _response(**{"retry-after": when})) <= 30


def test_backoff_doubles_is_capped_and_jittered():
    low = RetryPolicy(backoff_base=0.5, backoff_max=8.0, random_fraction=lambda: 0.0)
    high = RetryPolicy(backoff_base=0.5, backoff_max=8.0, random_fraction=lambda: 0.999)
    assert [low.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert high.delay(3) == pytest.approx(2.0 * (1 - 0.25 * 0.999))


@pytest.mark.parametrize(
    ("status", "headers", "retried"),
    [
        (408, {}, True),
        (409, {}, True),
        (429, {}, True),
        (500, {}, True),
        (503, {}, True),
        (599, {}, True),
        (400, {}, False),
        (401, {}, False),
        (403, {}, False),
        (404, {}, False),
        (422, {}, False),
        (503, {"x-should-retry": "false"}, False),
        (400, {"x-should-retry": "true"}, True),
    ],
)
def test_which_answers_are_retried(status, headers, retried):
    assert RetryPolicy().should_retry(_response(status, **headers)) is retried


@pytest.fixture
def cli(cli, monkeypatch):
    """`openai-ft load` with 3 attempts, millisecond backoffs and a short timeout."""
    monkeypatch.setenv("SOURCES__OPENAI_FINE_TUNING__MAX_ATTEMPTS", "3")
    monkeypatch.setenv("SOURCES__OPENAI_FINE_TUNING__BACKOFF_BASE", "0.001")
    monkeypatch.setenv("SOURCES__OPENAI_FINE_TUNING__BACKOFF_MAX", "0.002")
    monkeypatch.setenv("SOURCES__OPENAI_FINE_TUNING__REQUEST_TIMEOUT", "0.3")
    return cli


@pytest.mark.parametrize(
    ("kind", "last"),
    [
        ("503", "last answer 503 The server had an error while processing your request."),
        ("500", "last answer 500 The server had an error while processing your request."),
        ("502_html", "last answer 502 '<html><body><h1>502 Bad Gateway</h1>nginx</body></html>'"),
        ("429_retry_after", "last answer 429 Rate limit reached for requests."),
        ("429_retry_after_ms", "last answer 429 Rate limit reached for requests."),
        ("drop", "connection dropped mid-response (http://127.0.0.1:{port})"),
        ("slow", "timed out (http://127.0.0.1:{port})"),
    ],
)
def test_exhausted_retries_name_endpoint_attempts_and_last_answer(cli, sandbox, kind, last):
    sandbox.faults = FaultPlan(
        rate=1.0,
        kinds=[kind],
        routes=["jobs"],
        retry_after="0",
        retry_after_ms="1",
        slow_seconds=1.0,
    )
    code, _, err = cli()
    assert code == 4
    assert err == (
        "openai-ft: error: GET /v1/fine_tuning/jobs failed after 3 attempts: "
        + last.format(port=sandbox.port)
    )
    assert sandbox.stats.by_route == {"GET /v1/fine_tuning/jobs": 3}


@pytest.mark.parametrize(
    ("env", "code"),
    [({"OPENAI_API_KEY": "sk-nope"}, 3), ({"OPENAI_ORG_ID": "org-nope"}, 3)],
)
def test_final_4xx_are_never_retried(cli, sandbox, env, code):
    assert cli(env=env)[0] == code
    assert sandbox.stats.total == 1


def test_unknown_job_404_is_not_retried(cli, sandbox):
    assert cli("--job", "ftjob-missing")[0] == 2
    assert sandbox.stats.total == 1


def test_every_fault_kind_is_survived(tmp_path):
    world = FineTuningWorld(seed=3, jobs=8, max_steps=15, big_job_steps=None)
    with SandboxServer(world, api_key=API_KEY) as sandbox:
        sandbox.faults = FaultPlan(
            rate=0.4, seed=3, retry_after="0", retry_after_ms="1", slow_seconds=0.5
        )
        loader = Loader(sandbox, tmp_path)
        # 0.4 ** 20: no request runs out of attempts
        loader.run(
            page_size=2, max_attempts=20, backoff_base=0.001, backoff_max=0.005, request_timeout=0.2
        )
        assert_history_equal_truth(loader, world)
        assert set(sandbox.faults.snapshot()) == set(FaultPlan.kinds)  # every kind happened
