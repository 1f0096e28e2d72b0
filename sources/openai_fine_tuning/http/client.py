"""HTTP access to the fine-tuning endpoints: dlt's REST client on a retrying pooled session."""

from __future__ import annotations

import json
import logging
from typing import Any, Callable, Dict, Iterator, List, Optional, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import orjson
import requests
from dlt.common import logger as dlt_logger
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.auth import APIKeyAuth, AuthConfigBase, BearerTokenAuth
from dlt.sources.helpers.rest_client.redaction import sanitize_url

from ..errors import (
    AuthenticationError,
    ConfigurationError,
    FineTuningSourceError,
    JobNotFoundError,
    UpstreamError,
)
from ..options import ApiOptions
from ..settings import ENV_API_KEY, ENV_AZURE_API_KEY, FILES_PATH, JOBS_PATH
from ..stats import RunStats
from .paginator import OpenAICursorPaginator
from .read_ahead import ReadAhead
from .responses import api_message, endpoint, endpoint_of, first_bytes
from .retry import RetryingSession, RetryPolicy
from .throttle import RequestGate

USER_AGENT = "dlt-openai-fine-tuning/0.1"
T = TypeVar("T")


def redact_url(url: str) -> str:
    """The URL without user:password and with secret-looking query values masked."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
        url = urlunsplit(parts._replace(netloc=netloc))
    return sanitize_url(url)


def _error_for(response: requests.Response, key_setting: str) -> FineTuningSourceError:
    """The user-facing error for a final (not retried) 4xx answer.

    `key_setting` names where the key comes from, for a 401.
    """
    status, endpoint = response.status_code, endpoint_of(response)
    if status == 401:
        # The API's own 401 message echoes part of the key: never repeat it.
        return AuthenticationError(
            f"The API rejected the key (401 Unauthorized) at {endpoint}: check {key_setting}"
        )
    if status == 403:
        return AuthenticationError(
            f"Access denied (403 Forbidden) at {endpoint}: the key has no access to the"
            f" configured organization or project ({api_message(response)})",
            status=403,
            detail=api_message(response),
        )
    return UpstreamError(f"{endpoint} answered {status}: {api_message(response)}", status=status)


def _auth(options: ApiOptions) -> AuthConfigBase:
    """dlt's auth for the scheme: OpenAI's bearer key, or Azure's `api-key` header."""
    if options.auth_scheme == "api-key":
        return APIKeyAuth(name="api-key", api_key=options.api_key, location="header")
    return BearerTokenAuth(options.api_key)


class OpenAIRestClient(RESTClient):
    """dlt's REST client that checks each page against the OpenAI list envelope.

    The body is parsed once and kept on the response for the paginator. Requests are sent as
    dlt's `_send_request` sends them, less two costs it pays on every request (together about
    a third of a request's CPU on loopback, bench/NOTES.md): the proxy and CA-bundle settings
    of the environment, which `requests` reads again from every variable of `os.environ` for
    each request, are read once, when the client is made (every request goes to the base
    URL's host); and dlt's info line for each request, formatted even when logging is off,
    is logged only when info logging is on.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._environment = self.session.merge_environment_settings(
            self.base_url, {}, None, None, None
        )

    def _send_request(self, request: requests.Request, **kwargs: Any) -> requests.Response:
        prepared = self.session.prepare_request(request)
        if _info_logged():
            self._log_request(request, prepared.url or "")
        send_kwargs = dict(self._environment)
        if kwargs.get("stream") is not None:
            send_kwargs["stream"] = kwargs.pop("stream")
        send_kwargs.update(kwargs)
        return self.session.send(prepared, **send_kwargs)

    def extract_response(self, response: requests.Response, data_selector: Any) -> List[Any]:
        body, data = list_body(response)
        response.openai_body = body  # type: ignore[attr-defined]
        return data


def _info_logged() -> bool:
    """Whether dlt's logger would write an info line (it has no logger before a pipeline)."""
    return dlt_logger.LOGGER is not None and dlt_logger.LOGGER.isEnabledFor(logging.INFO)


def list_body(response: requests.Response) -> tuple[Dict[str, Any], List[Any]]:
    """(the parsed body, its `data` list) of a list response, or an `UpstreamError`."""
    body = parse_json(response)
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        what = "no 'data' list" if data is None else f"'data' of type {type(data).__name__}"
        raise UpstreamError(f"{endpoint_of(response)} answered a list with {what}")
    return body, data


def parse_json(response: requests.Response) -> Any:
    """The JSON body, or an `UpstreamError` quoting what came instead (a proxy's HTML page).

    Parsed by orjson (≈3x the speed of `response.json()`, which uses simplejson when it is
    installed); what orjson refuses but Python's json reads (NaN) still parses.
    """
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(response.content)
    except ValueError:
        raise UpstreamError(
            f"{endpoint_of(response)} answered {response.status_code} with a non-JSON body"
            f" ({response.headers.get('Content-Type', 'no content type')}):"
            f" {first_bytes(response)!r}"
        ) from None


class FineTuningApi:
    """The fine-tuning and file endpoints of one OpenAI-compatible server.

    Args:
        options: Where the API is, how to authenticate, how to page and retry.
        stats: Where requests are counted.

    Raises:
        ConfigurationError: for a base URL that is not http(s)://host/...
    """

    def __init__(self, options: ApiOptions, stats: Optional[RunStats] = None) -> None:
        parts = urlsplit(options.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(
                f"Invalid base URL {redact_url(options.base_url)!r}: expected"
                " http(s)://host[:port]/path (sources.openai_fine_tuning.base_url or"
                " OPENAI_BASE_URL)"
            )
        if parts.query or parts.fragment:  # a key there would be sent and stored in URLs
            raise ConfigurationError(
                f"Invalid base URL {redact_url(options.base_url)!r}: it must not carry a query"
                " string or fragment; put the key in sources.openai_fine_tuning.api_key (or"
                " OPENAI_API_KEY) and the Azure API version in api_version"
            )
        self.options = options
        self.base_url = options.base_url.rstrip("/")
        self.stats = stats if stats is not None else RunStats()
        self.policy = RetryPolicy(options.max_attempts, options.backoff_base, options.backoff_max)
        self.gate = RequestGate(options.workers, options.max_requests_per_second)
        headers = {"User-Agent": USER_AGENT}
        if options.organization:
            headers["OpenAI-Organization"] = options.organization
        if options.project:
            headers["OpenAI-Project"] = options.project
        session = RetryingSession(
            self.policy,
            options.request_timeout,
            self.gate,
            on_retry=self.stats.count_retry,
            on_rate_limit=self.stats.count_rate_limited,
        )
        if options.api_version:
            # merged into every request the session prepares, pages and file contents alike
            session.params = {"api-version": options.api_version}
        self._rest = OpenAIRestClient(
            base_url=self.base_url,
            headers=headers,
            auth=_auth(options),
            paginator=OpenAICursorPaginator(),
            data_selector="data",
            session=session,
        )
        self._hooks = {"response": [self._on_response]}
        self._key_setting = (
            f"sources.openai_fine_tuning.api_key or {ENV_AZURE_API_KEY} (sent as api-key)"
            if options.auth_scheme == "api-key"
            else f"sources.openai_fine_tuning.api_key or {ENV_API_KEY}"
        )

    def endpoint(self, path: str) -> str:
        """`GET /v1/<path>`: how messages name a request to `path` (`responses.endpoint`)."""
        return endpoint("GET", f"{self.base_url}/{path}")

    def _on_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        """Runs for every attempt: counts it, and ends the run on a final 4xx."""
        self.stats.count_request(self.gate.lowest_limit)
        if response.status_code >= 400 and not self.policy.should_retry(response):
            if response.status_code == 404 and urlsplit(response.url).path.endswith(
                "/" + JOBS_PATH
            ):
                # the list of jobs always exists: a 404 there means a wrong base URL
                raise ConfigurationError(
                    f"{endpoint_of(response)} answered 404 ({api_message(response)}): no"
                    f" fine-tuning API under the base URL {redact_url(self.base_url)!r}; OpenAI's"
                    " ends in /v1 (sources.openai_fine_tuning.base_url or OPENAI_BASE_URL)"
                )
            raise _error_for(response, self._key_setting)

    def iter_pages(self, path: str) -> ReadAhead[List[Dict[str, Any]]]:
        """Pages of a list endpoint, newest first; stop consuming to stop requesting, and
        call `fetch_next()` once the next page is wanted, to have it fetched meanwhile."""
        pages = self._rest.paginate(
            path,
            params={"limit": self.options.page_size},
            paginator=OpenAICursorPaginator(),  # dlt would deep-copy the client's, per list
            hooks=dict(self._hooks),
        )
        return ReadAhead(pages)

    def get_job(self, job_id: str) -> Dict[str, Any]:
        """One job; `JobNotFoundError` naming it when the API does not know it."""
        try:
            response = self._rest.get(f"{JOBS_PATH}/{quote(job_id, safe='')}", hooks=self._hooks)
        except UpstreamError as error:
            if error.status == 404:
                raise JobNotFoundError(
                    f"Fine-tuning job {job_id!r} was not found (404) for this key and"
                    " organization: check --job / sources.openai_fine_tuning.job_ids"
                ) from None
            raise
        body = parse_json(response)
        if not isinstance(body, dict) or body.get("id") != job_id:
            raise UpstreamError(f"{endpoint_of(response)} answered no job {job_id!r}")
        return body

    def get_file(self, file_id: str) -> Optional[Dict[str, Any]]:
        """A file's metadata; None when the file was deleted or expired (404)."""
        response = self._get_or_none(f"{FILES_PATH}/{quote(file_id, safe='')}")
        if response is None:
            return None
        body = parse_json(response)
        if not isinstance(body, dict) or body.get("id") != file_id:
            raise UpstreamError(f"{endpoint_of(response)} answered no file {file_id!r}")
        return body

    def list_all(self, path: str) -> List[Any]:
        """Every item of a list that comes in one page (no paging), e.g. `models`.

        Raises:
            AuthenticationError: with `status` 403 for a key without the list's scope.
        """
        return list_body(self._rest.get(path, hooks=self._hooks))[1]

    def read_file_content(
        self, file_id: str, read_body: Callable[[Iterator[bytes]], T]
    ) -> Optional[T]:
        """`read_body(chunks)` of a file's content, streamed; None when the file is gone (404).

        The session's one retry loop covers the body too: `read_body` is called afresh on
        each attempt (whatever it built from a broken body is its own to discard).

        Raises:
            BodyLostError: the body broke off mid-way on every attempt.
        """
        response = self._get_or_none(
            f"{FILES_PATH}/{quote(file_id, safe='')}/content", stream=True, read_body=read_body
        )
        return None if response is None else response.body_read  # type: ignore[attr-defined]

    def _get_or_none(self, path: str, **kwargs: Any) -> Optional[requests.Response]:
        try:
            return self._rest.get(path, hooks=self._hooks, **kwargs)
        except UpstreamError as error:
            if error.status == 404:
                return None
            raise
