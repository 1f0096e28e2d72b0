"""An OpenAI-compatible HTTP server for the fine-tuning read endpoints over a `FineTuningWorld`.

Routes under `/v1` behave as the contract in `spec/fine_tuning.yaml` says; the same routes under
`/openai/v1` and `/openai` (with `api-version`) as Azure OpenAI serves them. Routes under
`/_sandbox` are controls for tests, the demo and benchmarks (stats, time, latency, misbehaviour,
rate limit, models, truth).

Longer than the other modules on purpose: it is the whole HTTP surface of the sandbox (the
`/v1` routes, their Azure forms, the `/_sandbox` controls, faults and the rate limit), which
reads best in one place; the data behind it lives in `world.py` and its helpers.
"""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, NamedTuple, Optional, Sequence, Tuple
from urllib.parse import parse_qs, unquote, urlsplit

from fake_openai.azure import AzureRequestError, check_credentials, openai_path
from fake_openai.faults import FaultPlan, TokenBucket
from fake_openai.files import UnknownFileError
from fake_openai.paging import UnknownCursorError
from fake_openai.world import FineTuningWorld, UnknownJobError, UnknownModelError

JOB_ROUTE = re.compile(r"^/v1/fine_tuning/jobs/([^/]+)$")
JOB_LIST_ROUTE = re.compile(r"^/v1/fine_tuning/jobs/([^/]+)/(checkpoints|events)$")
FILE_ROUTE = re.compile(r"^/v1/files/([^/]+)$")
FILE_CONTENT_ROUTE = re.compile(r"^/v1/files/([^/]+)/content$")
MODELS_ROUTE = "/v1/models"
MODEL_ROUTE = re.compile(r"^/v1/models/([^/]+)$")  # ids have colons, sent as is or as %3A
DEFAULT_LIMITS = {"jobs": 20, "checkpoints": 10, "events": 20}
MISBEHAVIOURS = (
    "repeat_cursor",  # has_more: true, and the next page repeats the first
    "empty_page",  # has_more: true with no items
    "html",  # a proxy's HTML page with status 200
    "no_data",  # a list without `data`
    "data_not_list",  # `data` is an object
    "item_without_id",  # the first item lacks `id`
    "item_without_created_at",  # the first item lacks `created_at`
)


class RawBody(NamedTuple):
    """A body sent as is (a file's content), not as JSON."""

    payload: bytes
    content_type: str = "application/octet-stream"


class ApiError(Exception):
    """An error answered with an OpenAI `ErrorResponse` body."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str,
        param: Optional[str] = None,
        code: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": type_, "param": param, "code": code}}


# the API's answer to a request beyond the rate limit
RATE_LIMITED = ApiError(
    429, "Rate limit reached for requests.", "requests", code="rate_limit_exceeded"
)
MODELS_FORBIDDEN = (
    "You have insufficient permissions for this operation. Missing scopes: api.model.read."
)


def _model_not_found(model_id: str) -> ApiError:
    return ApiError(
        404,
        f"The model `{model_id}` does not exist or you do not have access to it.",
        "invalid_request_error",
        code="model_not_found",
    )


class SandboxStats:
    """Requests per route (`GET /v1/fine_tuning/jobs/{id}/checkpoints`) and path, peak in flight."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_route: Counter[str] = Counter()
        self.by_path: Counter[str] = Counter()
        self.in_flight = 0
        self.peak_in_flight = 0
        self.scopes: set = set()  # (OpenAI-Organization, OpenAI-Project) pairs seen
        self.rate_limited = 0  # 429s of the rate limit (not of a fault plan)

    def enter(self, route: str, path: str) -> None:
        with self._lock:
            self.by_route[route] += 1
            self.by_path[path] += 1
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def limited(self) -> None:
        with self._lock:
            self.rate_limited += 1

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def reset(self) -> None:
        with self._lock:
            self.by_route.clear()
            self.by_path.clear()
            self.peak_in_flight = self.in_flight
            self.rate_limited = 0

    @property
    def total(self) -> int:
        return sum(self.by_route.values())

    def snapshot(self) -> Dict[str, Any]:
        with self._lock:
            return {
                "total": sum(self.by_route.values()),
                "by_route": dict(self.by_route),
                "by_path": dict(self.by_path),
                "peak_in_flight": self.peak_in_flight,
                "rate_limited": self.rate_limited,
            }


class _LoopbackHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that hangs up (e.g. after an error it will not retry) is normal here
        error = sys.exc_info()[1]
        if not isinstance(error, (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def _route_of(path: str) -> Tuple[str, str]:
    """(route as counted in stats, route kind for fault plans)."""
    if path == "/v1/fine_tuning/jobs":
        return "GET /v1/fine_tuning/jobs", "jobs"
    match = JOB_LIST_ROUTE.match(path)
    if match:
        return f"GET /v1/fine_tuning/jobs/{{id}}/{match.group(2)}", match.group(2)
    if JOB_ROUTE.match(path):
        return "GET /v1/fine_tuning/jobs/{id}", "job"
    if FILE_ROUTE.match(path):
        return "GET /v1/files/{id}", "file"
    if FILE_CONTENT_ROUTE.match(path):
        return "GET /v1/files/{id}/content", "content"
    if path == MODELS_ROUTE:
        return "GET /v1/models", "models"
    if MODEL_ROUTE.match(path):
        return "GET /v1/models/{id}", "models"
    return "GET " + path, "other"


class SandboxServer:
    """A running sandbox: `start()` binds 127.0.0.1 on a free port (or `port`) in a thread.

    Args:
        world: The data served.
        api_key: The only Bearer token accepted.
        port: 0 picks a free port.
        latency: Seconds added to every `/v1` response.
        rate_limit: Requests per second a token bucket admits (None: no limit); a `/v1`
            request beyond it gets the API's 429 with `retry-after-ms`.
        rate_burst: The bucket's size, `max(1, rate_limit)` when None.

    `models_forbidden` (an attribute, or `POST /_sandbox/models?forbidden=true`) answers the
    models routes with the 403 of a restricted key without the models scope.
    """

    def __init__(
        self,
        world: Optional[FineTuningWorld] = None,
        api_key: str = "sk-sandbox",
        port: int = 0,
        latency: float = 0.0,
        host: str = "127.0.0.1",
        rate_limit: Optional[float] = None,
        rate_burst: Optional[float] = None,
    ) -> None:
        self.world = world if world is not None else FineTuningWorld()
        self.api_key = api_key
        self.latency = latency
        self.stats = SandboxStats()
        self.faults: Optional[FaultPlan] = None
        self.projects = {"proj_sandbox"}  # projects the key may name in `OpenAI-Project`
        # list kind ("jobs", "checkpoints", "events") -> one of MISBEHAVIOURS
        self.misbehave: Dict[str, str] = {}
        self.limiter: Optional[TokenBucket] = None
        self.set_rate_limit(rate_limit, rate_burst)
        self.models_forbidden = False
        self._httpd = _LoopbackHTTPServer((host, port), _make_handler(self))
        self._thread: Optional[threading.Thread] = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What a client uses as OpenAI base URL."""
        return self.root_url + "/v1"

    def set_rate_limit(self, rps: Optional[float], burst: Optional[float] = None) -> None:
        """Limits `/v1` requests to `rps` per second (bursts of `burst`); None or 0 removes it."""
        self.limiter = TokenBucket(rps, burst) if rps else None

    def start(self) -> SandboxServer:
        # a short poll: stop() waits for the loop to notice, once per test that uses a sandbox
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---- request handling --------------------------------------------------------------------

    @property
    def azure_endpoint(self) -> str:
        """What an Azure OpenAI client uses as the resource endpoint."""
        return self.root_url

    def handle_api(
        self, path: str, query: Dict[str, str], headers: Any, azure: bool = False
    ) -> Tuple[int, Any]:
        """Answers one `/v1` GET; returns (status, JSON body or raw bytes).

        `azure`: the request came by an Azure path, and was authenticated as Azure does.
        """
        if not azure and headers.get("Authorization") != f"Bearer {self.api_key}":
            raise ApiError(
                401, "Incorrect API key provided.", "invalid_request_error", code="invalid_api_key"
            )
        self._check_scope(headers)
        if path == "/v1/fine_tuning/jobs":
            return 200, self._list("jobs", self.world.list_jobs, query)
        match = JOB_LIST_ROUTE.match(path)
        if match:
            job_id, kind = match.groups()
            lister = (
                self.world.list_checkpoints if kind == "checkpoints" else self.world.list_events
            )
            return 200, self._list(kind, lambda a, n: lister(job_id, a, n), query)
        match = JOB_ROUTE.match(path)
        if match:
            return 200, self.world.get_job(match.group(1))
        match = FILE_ROUTE.match(path)
        if match:
            return 200, self.world.get_file(match.group(1))
        match = FILE_CONTENT_ROUTE.match(path)
        if match:
            return 200, RawBody(self.world.file_content(match.group(1)))
        match = MODEL_ROUTE.match(path)
        if path == MODELS_ROUTE or match:
            if self.models_forbidden:  # a restricted key without the models scope
                raise ApiError(403, MODELS_FORBIDDEN, "invalid_request_error")
            if match is None:  # one page, no paging parameters (as the API)
                return 200, {"object": "list", "data": self.world.list_models(azure)}
            model_id = unquote(match.group(1))
            try:
                return 200, self.world.get_model(model_id, azure)
            except UnknownModelError:
                raise _model_not_found(model_id) from None
        raise ApiError(404, f"Invalid URL (GET {path})", "invalid_request_error")

    def _check_scope(self, headers: Any) -> None:
        """403 when `OpenAI-Organization` / `OpenAI-Project` name one the key cannot use."""
        organization = headers.get("OpenAI-Organization")
        project = headers.get("OpenAI-Project")
        self.stats.scopes.add((organization, project))
        if organization is not None and organization != self.world.organization_id:
            raise ApiError(
                403,
                f"You do not have access to organization {organization}.",
                "invalid_request_error",
                code="no_access_to_organization",
            )
        if project is not None and project not in self.projects:
            raise ApiError(
                403,
                f"You do not have access to project {project}.",
                "invalid_request_error",
                code="no_access_to_project",
            )

    def _list(self, kind: str, lister: Any, query: Dict[str, str]) -> Any:
        raw_limit = query.get("limit", str(DEFAULT_LIMITS[kind]))
        try:
            limit = int(raw_limit)
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100:
            raise ApiError(
                400,
                f"Invalid 'limit': integer between 1 and 100 expected, got {raw_limit!r}.",
                "invalid_request_error",
                param="limit",
                code="integer_out_of_range",
            )
        after = query.get("after")
        try:
            items, has_more = lister(after, limit)
        except UnknownCursorError:
            raise ApiError(
                400,
                f"Invalid 'after': no such object {after!r}.",
                "invalid_request_error",
                param="after",
            ) from None
        mode = self.misbehave.get(kind)
        if mode == "html":
            return b"<html><body><h1>502 Bad Gateway</h1></body></html>"
        if mode == "empty_page":
            items, has_more = [], True
        elif mode == "repeat_cursor" and after is not None:
            items, has_more = lister(None, limit)[0], True  # page 1 again: a cursor loop
        body: Dict[str, Any] = {"object": "list", "data": items, "has_more": has_more}
        if kind == "checkpoints":
            body["first_id"] = items[0]["id"] if items else None
            body["last_id"] = items[-1]["id"] if items else None
        if mode == "no_data":
            del body["data"]
        elif mode == "data_not_list":
            body["data"] = {"items": items}
        elif mode in ("item_without_id", "item_without_created_at") and items:
            items[0].pop("id" if mode == "item_without_id" else "created_at")
        return body

    def handle_control(self, method: str, path: str, query: Dict[str, str]) -> Any:
        """`/_sandbox/...`: stats, time, latency, misbehaviour, rate limit, faults, models,
        truth."""
        world = self.world
        if path == "/_sandbox/stats":
            faults = self.faults.snapshot() if self.faults else {}
            return {**self.stats.snapshot(), "faults_injected": faults}
        if path == "/_sandbox/reset_stats":
            self.stats.reset()
            return {"ok": True}
        if path == "/_sandbox/advance":
            world.advance(
                int(query.get("seconds", "3600")),
                int(query.get("checkpoints", "2")),
                finish=query.get("finish") == "true",
            )
            return {"now": world.now}
        if path == "/_sandbox/finish":
            return {"finished": world.finish_running_jobs()}
        if path == "/_sandbox/jobs" and method == "POST":
            return world.add_job(
                status=query.get("status", "running"),
                checkpoints=int(query.get("checkpoints", "3")),
                method=query.get("method", "supervised"),
            )
        if path == "/_sandbox/rate_limit":
            rps = float(query.get("rps", "0"))
            burst = query.get("burst")
            self.set_rate_limit(rps, float(burst) if burst else None)
            limiter = self.limiter
            return {"rps": limiter.rate, "burst": limiter.burst} if limiter else {"rps": 0}
        if path == "/_sandbox/latency":
            self.latency = float(query.get("ms", "0")) / 1000
            return {"latency_ms": self.latency * 1000}
        if path == "/_sandbox/faults":
            kinds, routes = query.get("kinds"), query.get("routes")
            self.faults = FaultPlan(
                rate=float(query.get("rate", "0")),
                seed=int(query.get("seed", "0")),
                kinds=kinds.split(",") if kinds else FaultPlan.kinds,
                routes=routes.split(",") if routes else None,
            )
            return {"rate": self.faults.rate, "kinds": list(self.faults.kinds)}
        if path == "/_sandbox/models":
            if "forbidden" in query:
                self.models_forbidden = query["forbidden"] == "true"
            return {"forbidden": self.models_forbidden}
        if path == "/_sandbox/models/announce" and method == "POST":
            model_id, date = query.get("model", ""), query.get("date") or None
            try:
                world.announce_shutdown(model_id, date)
            except UnknownModelError:
                raise _model_not_found(model_id) from None
            except ValueError as error:
                raise ApiError(400, str(error), "invalid_request_error", param="date") from None
            return world.get_model(model_id)
        if path == "/_sandbox/truth":
            return {
                "jobs": world.truth_jobs(),
                "checkpoints": world.truth_checkpoints(),
                "events": world.truth_events(),
                "files": world.truth_files(),
                "results": world.truth_results(),
                "models": world.truth_models(),
            }
        raise ApiError(404, f"Unknown control {path}", "invalid_request_error")


def _make_handler(sandbox: SandboxServer) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the real API
        # headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm
        # and the client's delayed ACK stall every keep-alive response by ~40 ms
        disable_nagle_algorithm = True
        server_version = "fake-openai"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # quiet: tests and benchmarks count requests through stats instead

        def _send(self, status: int, body: Any, headers: Sequence[Tuple[str, str]] = ()) -> None:
            if isinstance(body, RawBody):
                payload, ctype = body  # written as is: no copy of a large file's content
            elif isinstance(body, bytes):
                payload, ctype = body, "text/html"
            else:
                payload, ctype = json.dumps(body).encode(), "application/json"
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def _send_fault(self, fault: str) -> None:
            plan = sandbox.faults
            if fault == "drop":
                payload = json.dumps({"object": "list", "data": [], "has_more": False}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload[: len(payload) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if fault == "502_html":
                self._send(502, b"<html><body><h1>502 Bad Gateway</h1>nginx</body></html>")
                return
            if fault.startswith("429"):
                error = RATE_LIMITED
                header = (
                    ("retry-after-ms", plan.retry_after_ms)
                    if fault.endswith("_ms")
                    else ("retry-after", plan.retry_after)
                )
                self._send(429, error.body, headers=[header])
                return
            status = int(fault)
            self._send(
                status,
                ApiError(
                    status, "The server had an error while processing your request.", "server_error"
                ).body,
            )

        def _dispatch(self, method: str) -> None:
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            try:
                if parts.path.startswith("/_sandbox/"):
                    self._send(200, sandbox.handle_control(method, parts.path, query))
                    return
                path = openai_path(parts.path, query)
                azure = path is not None
                if azure:
                    check_credentials(self.headers, sandbox.api_key)
                else:
                    path = parts.path
                route, kind = _route_of(path)
                sandbox.stats.enter(route, parts.path)
                try:
                    wait_ms = sandbox.limiter.acquire() if sandbox.limiter else None
                    if wait_ms is not None:
                        sandbox.stats.limited()
                        self._send(429, RATE_LIMITED.body, [("retry-after-ms", str(wait_ms))])
                        return
                    if sandbox.latency:
                        time.sleep(sandbox.latency)
                    fault = sandbox.faults.draw(kind) if sandbox.faults else None
                    if fault is not None and fault != "slow":
                        self._send_fault(fault)
                        return
                    if fault == "slow":
                        time.sleep(sandbox.faults.slow_seconds)
                    if method != "GET":
                        raise ApiError(405, f"Method {method} not allowed", "invalid_request_error")
                    self._send(*sandbox.handle_api(path, query, self.headers, azure))
                finally:
                    sandbox.stats.leave()
            except (ApiError, AzureRequestError) as error:
                self._send(error.status, error.body)
            except UnknownFileError as error:
                message = f"No such File object: {error.args[0]}"
                self._send(404, ApiError(404, message, "invalid_request_error", "id").body)
            except UnknownJobError as error:
                self._send(
                    404,
                    ApiError(
                        404,
                        f"Could not find fine-tune: {error.args[0]}",
                        "invalid_request_error",
                        param="fine_tune_id",
                        code="fine_tune_not_found",
                    ).body,
                )

        def do_GET(self) -> None:  # noqa: N802
            self._dispatch("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._dispatch("POST")

    return Handler


def start_sandbox(
    seed: int = 0, jobs: int = 12, max_checkpoints: int = 8, **kwargs: Any
) -> SandboxServer:
    """Generates a world from `seed` and serves it on a free 127.0.0.1 port."""
    world = FineTuningWorld(seed=seed, jobs=jobs, max_checkpoints=max_checkpoints)
    return SandboxServer(world, **kwargs).start()
