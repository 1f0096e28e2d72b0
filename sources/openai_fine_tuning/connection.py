"""Where the API is and how to authenticate: OpenAI, or Azure OpenAI (Microsoft Foundry).

Both serve the same fine-tuning endpoints and shapes. They differ in the root URL, the
authentication header and, for Azure's dated API versions, an `api-version` query parameter on
every request. Values come from dlt config first, then from the environment variables the
official SDKs read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional
from urllib.parse import urlsplit, urlunsplit

from .errors import ConfigurationError
from .settings import (
    API_TYPES,
    AZURE_DATED_PATH,
    AZURE_V1_PATH,
    DEFAULT_BASE_URL,
    ENV_API_KEY,
    ENV_API_VERSION,
    ENV_AZURE_AD_TOKEN,
    ENV_AZURE_API_KEY,
    ENV_AZURE_ENDPOINT,
    ENV_BASE_URL,
)


def setting(value: Optional[str], env_var: str) -> Optional[str]:
    """The dlt config value, else the environment variable; blank counts as unset."""
    value = value or os.environ.get(env_var)
    return value.strip() if value and value.strip() else None


@dataclass(frozen=True)
class Connection:
    """The resolved root URL and credentials of one API.

    Args:
        base_url: Root of the endpoints (`.../v1`, `.../openai/v1` or `.../openai`).
        auth_scheme: `bearer` (`Authorization: Bearer ...`) or `api-key` (Azure's key header).
        credential: The key or token (never shown by `repr`).
        api_version: Azure's dated API version, sent as `api-version` with every request.
    """

    base_url: str
    auth_scheme: str
    credential: str = field(repr=False)
    api_version: Optional[str] = None


def _azure_base_url(endpoint: str, api_version: Optional[str]) -> str:
    """The resource endpoint with the path of the API version chosen, unless it names one."""
    parts = urlsplit(endpoint)
    if parts.path.strip("/"):
        return endpoint.rstrip("/")
    path = AZURE_DATED_PATH if api_version else AZURE_V1_PATH
    return urlunsplit(parts._replace(path=path, query="", fragment=""))


def _not_a_placeholder(key: str, where: str) -> None:
    """Refuses the example's `sk-...` (no real key holds `...`) before it is sent anywhere."""
    if "..." in key or "…" in key:
        raise ConfigurationError(
            "The API key is a placeholder (it has '...', as in .dlt/secrets.toml.example):"
            f" put your key in {where}"
        )


def resolve_connection(
    api_type: Optional[str],
    api_key: Optional[str],
    base_url: Optional[str],
    api_version: Optional[str] = None,
    azure_ad_token: Optional[str] = None,
) -> Connection:
    """Resolves the connection from config values and the SDKs' environment variables.

    Args:
        api_type: `openai` (default) or `azure`.
        api_key: OpenAI: the bearer key (`OPENAI_API_KEY`). Azure: the resource key, sent as
            `api-key` (`AZURE_OPENAI_API_KEY`).
        base_url: OpenAI: the API root (`OPENAI_BASE_URL`). Azure: the resource endpoint
            (`AZURE_OPENAI_ENDPOINT`), `https://<resource>.openai.azure.com` (the path
            `/openai/v1` is added, or `/openai` with an `api_version`) or a full root.
        api_version: Azure's dated API version (`OPENAI_API_VERSION`), sent as `api-version`.
        azure_ad_token: A Microsoft Entra ID token (`AZURE_OPENAI_AD_TOKEN`), sent as a bearer
            token instead of the key.

    Raises:
        ConfigurationError: naming the missing or wrong setting.
    """
    kind = (api_type or "openai").strip().lower()
    if kind not in API_TYPES:
        raise ConfigurationError(
            f"Unknown api_type {api_type!r}: choose from {', '.join(API_TYPES)}"
            " (sources.openai_fine_tuning.api_type)"
        )
    if kind == "openai":
        if api_version or azure_ad_token:
            given = "api_version" if api_version else "azure_ad_token"
            raise ConfigurationError(
                f"{given} is only for Azure OpenAI: set sources.openai_fine_tuning.api_type"
                ' = "azure"'
            )
        key = setting(api_key, ENV_API_KEY)
        if key is None:
            raise ConfigurationError(
                "No OpenAI API key: set sources.openai_fine_tuning.api_key in"
                f" .dlt/secrets.toml or the {ENV_API_KEY} environment variable"
            )
        _not_a_placeholder(key, f"sources.openai_fine_tuning.api_key or {ENV_API_KEY}")
        root = setting(base_url, ENV_BASE_URL) or DEFAULT_BASE_URL
        return Connection(root, "bearer", key)

    endpoint = setting(base_url, ENV_AZURE_ENDPOINT)
    if endpoint is None:
        raise ConfigurationError(
            "Azure OpenAI needs the resource endpoint: set sources.openai_fine_tuning.base_url"
            f" or {ENV_AZURE_ENDPOINT} (https://<resource>.openai.azure.com)"
        )
    version = setting(api_version, ENV_API_VERSION)
    root = _azure_base_url(endpoint, version)
    if not version and urlsplit(root).path.rstrip("/").endswith(AZURE_DATED_PATH):
        raise ConfigurationError(
            f"The Azure path {AZURE_DATED_PATH} needs an API version: set"
            f" sources.openai_fine_tuning.api_version or {ENV_API_VERSION} (or use"
            f" {AZURE_V1_PATH}, which needs none)"
        )
    token = setting(azure_ad_token, ENV_AZURE_AD_TOKEN)
    if token is not None:
        return Connection(root, "bearer", token, version)
    key = setting(api_key, ENV_AZURE_API_KEY)
    if key is None:
        raise ConfigurationError(
            "No Azure OpenAI key: set sources.openai_fine_tuning.api_key in .dlt/secrets.toml"
            f" or {ENV_AZURE_API_KEY} (or an Entra ID token as azure_ad_token /"
            f" {ENV_AZURE_AD_TOKEN})"
        )
    _not_a_placeholder(key, f"sources.openai_fine_tuning.api_key or {ENV_AZURE_API_KEY}")
    return Connection(root, "api-key", key, version)
