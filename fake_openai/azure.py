"""Azure OpenAI's shape of the same endpoints (Microsoft Foundry keeps fine-tuning).

`{endpoint}/openai/v1/...` is the versionless API; `{endpoint}/openai/...?api-version=...` the
dated one, which refuses a request without `api-version`. Both authenticate with the resource
key in an `api-key` header, or a Microsoft Entra ID token as `Authorization: Bearer`.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

V1_PREFIX = "/openai/v1/"
DATED_PREFIX = "/openai/"

# Azure's own error bodies: `code` and `message`, no `type`
ACCESS_DENIED = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide"
    " a valid key for an active subscription and use a correct regional API endpoint for your"
    " resource."
)
MISSING_VERSION = "Missing required query parameter 'api-version'."


class AzureRequestError(Exception):
    """A request Azure answers with an error before looking at the route."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"code": code, "message": message}}


def openai_path(path: str, query: Dict[str, str]) -> Optional[str]:
    """The `/v1` path an Azure path stands for; None when `path` is not an Azure path.

    Raises:
        AzureRequestError: 400 for a dated path without `api-version`.
    """
    if path.startswith(V1_PREFIX):
        return "/v1/" + path[len(V1_PREFIX) :]
    if path.startswith(DATED_PREFIX):
        if not query.get("api-version"):
            raise AzureRequestError(400, "BadRequest", MISSING_VERSION)
        return "/v1/" + path[len(DATED_PREFIX) :]
    return None


def check_credentials(headers: Any, api_key: str) -> None:
    """Accepts the key as `api-key`, or as a bearer token (standing in for an Entra token).

    Raises:
        AzureRequestError: 401, as Azure answers a missing or wrong key.
    """
    if headers.get("api-key") == api_key or headers.get("Authorization") == f"Bearer {api_key}":
        return
    raise AzureRequestError(401, "401", ACCESS_DENIED)
