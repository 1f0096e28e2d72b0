"""How messages describe a response: its endpoint, the API's error message, its first bytes."""

from urllib.parse import urlsplit

import requests


def endpoint(method: str, url: str) -> str:
    """`GET /v1/fine_tuning/jobs`: how every message names a request, its method and path
    without host, query or credentials."""
    return f"{method} {urlsplit(url).path}"


def endpoint_of(response: requests.Response) -> str:
    """`endpoint()` of the request a response answers."""
    return endpoint(response.request.method or "GET", response.url)


def first_bytes(response: requests.Response, limit: int = 80) -> str:
    """The body's first bytes as one line of text."""
    text = response.content[:limit].decode("utf-8", errors="replace")
    return " ".join(text.split())


def api_message(response: requests.Response) -> str:
    """The `error.message` of an OpenAI error body, else the body's first bytes (quoted)."""
    try:
        message = response.json()["error"]["message"]
        if isinstance(message, str):
            return " ".join(message.split())
    except (ValueError, KeyError, TypeError):
        pass
    return repr(first_bytes(response))
