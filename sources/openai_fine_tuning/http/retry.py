"""Retries as the official OpenAI SDK does them, on a pooled keep-alive `requests` session.

dlt's retrying `Client` covers 429/5xx and `Retry-After` in seconds, but not `retry-after-ms`,
jitter, `x-should-retry`, or the attempt count and last answer that our error message names;
so the policy is ours, the HTTP stack stays `requests` under dlt's `RESTClient`.
"""

from __future__ import annotations

import random
import time
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Iterator, Optional
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from requests.exceptions import ChunkedEncodingError

from ..errors import BodyLostError, UpstreamError
from . import stopping
from .responses import api_message
from .responses import endpoint as name_endpoint
from .throttle import RequestGate

RETRY_STATUSES = frozenset({408, 409, 429})
RETRY_EXCEPTIONS = (requests.ConnectionError, requests.Timeout, ChunkedEncodingError)
MAX_SERVER_DELAY = 60.0  # a server-suggested wait longer than this is ignored, as in the SDK
# A 429 while other requests get through (one did in the last PACED_WINDOW seconds) means
# "slower", not "no": it does not use up an attempt, up to this many times `max_attempts`
# tries in all.
PACED_TRIES_FACTOR = 10
PACED_WINDOW = 2.0
BODY_CHUNK_BYTES = 256 * 1024  # a streamed body is read in chunks of this size


def _seconds(value: Optional[str], scale: float = 1.0) -> Optional[float]:
    """A positive number of seconds from a header value, else None (absent, 0, garbage)."""
    if value is None:
        return None
    try:
        seconds = float(value) * scale
    except ValueError:
        if scale != 1.0:
            return None
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return seconds if 0 < seconds <= MAX_SERVER_DELAY else None


class RetryPolicy:
    """Which answers to retry and how long to wait before the next attempt.

    Retries 408, 409, 429, every 5xx, connection errors and timeouts; a response header
    `x-should-retry: true|false` overrides that. Waits what `retry-after-ms` or `retry-after`
    (seconds or an HTTP date) asks when 0 < wait <= 60 s, else exponential backoff from
    `backoff_base` doubling up to `backoff_max`, minus up to 25% jitter.

    Args:
        max_attempts: Attempts per request, the first included.
        backoff_base: Wait before the second attempt, in seconds.
        backoff_max: Cap of the exponential wait.
        random_fraction: Source of jitter in [0, 1).
    """

    def __init__(
        self,
        max_attempts: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        random_fraction: Callable[[], float] = random.random,
    ) -> None:
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._random = random_fraction

    def should_retry(self, response: requests.Response) -> bool:
        override = response.headers.get("x-should-retry", "").lower()
        if override in ("true", "false"):
            return override == "true"
        return response.status_code in RETRY_STATUSES or response.status_code >= 500

    def server_delay(self, response: requests.Response) -> Optional[float]:
        """The wait the server asks for (`retry-after-ms`, else `retry-after`), if usable."""
        asked = _seconds(response.headers.get("retry-after-ms"), scale=0.001)
        return asked if asked is not None else _seconds(response.headers.get("retry-after"))

    def delay(self, retry_number: int, response: Optional[requests.Response] = None) -> float:
        """Seconds to wait before retry number `retry_number` (1 for the first retry)."""
        asked = self.server_delay(response) if response is not None else None
        if asked is not None:
            return asked
        backoff = min(self.backoff_base * 2 ** (retry_number - 1), self.backoff_max)
        return backoff * (1 - 0.25 * self._random())


def _origin(url: str) -> str:
    """scheme://host[:port] without credentials, for messages."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, "", "", ""))


def _reason(error: BaseException) -> str:
    if isinstance(error, requests.Timeout):
        return "timed out"
    if isinstance(error, ChunkedEncodingError):
        return "connection dropped mid-response"
    if "refused" in str(error).lower():
        return "connection refused"
    return "connection failed"


class RetryingSession(requests.Session):
    """A `requests` session whose `send` retries by a `RetryPolicy`.

    Response hooks run on every attempt (they see each answer, retried or not). When attempts
    run out, `send` raises `UpstreamError` naming the endpoint, the attempts and the last
    answer or connection problem.

    Args:
        policy: When and how long to retry.
        timeout: Seconds to wait for each response.
        gate: Bounds requests in flight; told about 429s and successes.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        timeout: float,
        gate: RequestGate,
        on_retry: Callable[[], None] = lambda: None,
        on_rate_limit: Callable[[Optional[float]], None] = lambda until: None,
    ) -> None:
        super().__init__()
        self.policy = policy
        self.timeout = timeout
        self.gate = gate
        self._on_retry = on_retry  # before each retry
        self._on_rate_limit = on_rate_limit  # each 429, with the pause's end (monotonic)
        # one keep-alive connection per request the gate lets through at once
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=gate.max_concurrency)
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def _retry_or_give_up(
        self,
        error: BaseException,
        attempt: int,
        tries: int,
        endpoint: str,
        request: requests.PreparedRequest,
        kind: type,
    ) -> None:
        """After a connection problem (before the answer, or mid-body): raises `kind` naming
        it when the attempts ran out, else counts the retry and waits before the next one."""
        if attempt >= self.policy.max_attempts:
            raise kind(
                f"{endpoint} failed after {tries} attempts: {_reason(error)}"
                f" ({_origin(request.url or '')})"
            ) from None
        self._on_retry()
        stopping.wait(self.policy.delay(attempt))

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """Sends with retries. `read_body`, when given (a function of the body's chunks),
        reads a streamed body inside the same loop: a connection lost mid-body is retried like
        one lost before the answer, and what it returns is the response's `body_read`."""
        read_body: Optional[Callable[[Iterator[bytes]], Any]] = kwargs.pop("read_body", None)
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        endpoint = name_endpoint(request.method or "GET", request.url or "")
        max_attempts = self.policy.max_attempts
        attempt = tries = 0  # attempts count against max_attempts; tries are all sends
        while True:
            attempt += 1
            tries += 1
            try:
                with self.gate as started:
                    response = super().send(request, **kwargs)
            except RETRY_EXCEPTIONS as error:
                self._retry_or_give_up(error, attempt, tries, endpoint, request, UpstreamError)
                continue
            server_delay = None
            if response.status_code == 429:
                server_delay = self.policy.server_delay(response)
                self.gate.rate_limited(server_delay, started)
                self._on_rate_limit(
                    None if server_delay is None else time.monotonic() + server_delay
                )
                paced = self.gate.succeeded_within(PACED_WINDOW)
                if paced and tries < PACED_TRIES_FACTOR * max_attempts:
                    attempt -= 1
            elif response.status_code < 400:
                self.gate.succeeded(started)
            if response.status_code < 400 and read_body is not None:
                try:
                    response.body_read = read_body(response.iter_content(BODY_CHUNK_BYTES))  # type: ignore[attr-defined]
                except RETRY_EXCEPTIONS as error:
                    self._retry_or_give_up(error, attempt, tries, endpoint, request, BodyLostError)
                    continue
                finally:
                    response.close()
            if response.status_code < 400 or not self.policy.should_retry(response):
                return response
            if attempt >= max_attempts:
                raise UpstreamError(
                    f"{endpoint} failed after {tries} attempts: last answer"
                    f" {response.status_code} {api_message(response)}",
                    status=response.status_code,
                )
            response.close()
            self._on_retry()
            if server_delay is None or response.status_code != 429:
                stopping.wait(self.policy.delay(attempt, response))
            # else: the gate holds every request start until the server's time
