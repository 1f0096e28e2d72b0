"""Azure OpenAI (Microsoft Foundry): the same history through the `/openai/v1` path or the dated
`/openai?api-version=` form, with the `api-key` header or an Entra ID bearer token."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sources.openai_fine_tuning import build, openai_fine_tuning
from sources.openai_fine_tuning.errors import ConfigurationError
from tests.helpers import API_KEY, assert_history_equal_truth, first_load_routes

VERSION = "2025-04-01-preview"


def _azure(loader, **options):
    options.setdefault("api_key", API_KEY)
    return loader.run(api_type="azure", base_url=loader.sandbox.azure_endpoint, **options)


def _paths(sandbox):
    return set(sandbox.stats.by_path)


def test_v1_path_with_api_key_loads_everything_then_only_what_is_new(loader, world):
    summary = _azure(loader, page_size=3)

    # every request went to the resource's /openai/v1, authenticated by the api-key header
    assert all(path.startswith("/openai/v1/") for path in _paths(loader.sandbox))
    assert loader.sandbox.stats.by_route == first_load_routes(world, page_size=3)
    assert summary.requests == loader.sandbox.stats.total
    assert_history_equal_truth(loader, world)

    world.advance(seconds=3600, new_checkpoints=2)
    _azure(loader, page_size=3)
    assert_history_equal_truth(loader, world)


def test_dated_api_version_on_every_request(loader, world):
    # the sandbox answers 400 to a dated path without api-version: pages after the first and
    # file contents must carry it too
    _azure(loader, api_version=VERSION, page_size=2)

    paths = _paths(loader.sandbox)
    assert paths and not any(p.startswith("/openai/v1/") for p in paths)
    assert all(p.startswith("/openai/") for p in paths)
    assert loader.sandbox.stats.by_route == first_load_routes(world, page_size=2)
    assert_history_equal_truth(loader, world)


def test_entra_id_token_as_bearer(loader, world):
    _azure(loader, api_key=None, azure_ad_token=API_KEY)
    assert_history_equal_truth(loader, world)


def test_endpoint_with_its_path_is_used_as_given(loader, world):
    loader.run(
        api_type="azure", api_key=API_KEY, base_url=loader.sandbox.azure_endpoint + "/openai/v1/"
    )
    assert all(p.startswith("/openai/v1/") for p in _paths(loader.sandbox))
    assert_history_equal_truth(loader, world)


def test_cli_reads_the_azure_sdk_environment(cli, sandbox, world, tmp_path):
    code, out, err = cli(
        env={
            "OPENAI_API_KEY": None,
            "OPENAI_BASE_URL": None,
            "SOURCES__OPENAI_FINE_TUNING__API_TYPE": "azure",
            "AZURE_OPENAI_ENDPOINT": sandbox.azure_endpoint,
            "AZURE_OPENAI_API_KEY": API_KEY,
            "OPENAI_API_VERSION": VERSION,
        }
    )
    assert (code, err) == (0, "")
    assert all(p.startswith("/openai/") and "/v1/" not in p for p in _paths(sandbox))
    assert sandbox.stats.by_route == first_load_routes(world)


def test_wrong_azure_key_exits_3_naming_the_azure_setting(cli, sandbox):
    wrong = "0123456789abcdef0123456789abcdef"
    code, out, err = cli(
        "--verbose",
        env={
            "OPENAI_API_KEY": None,
            "SOURCES__OPENAI_FINE_TUNING__API_TYPE": "azure",
            "AZURE_OPENAI_ENDPOINT": sandbox.azure_endpoint,
            "AZURE_OPENAI_API_KEY": wrong,
        },
    )
    assert code == 3
    assert err.splitlines()[-1] == (
        "openai-ft: error: The API rejected the key (401 Unauthorized) at GET"
        " /openai/v1/fine_tuning/jobs: check sources.openai_fine_tuning.api_key or"
        " AZURE_OPENAI_API_KEY (sent as api-key)"
    )
    assert wrong not in out + err and wrong[-8:] not in out + err


@pytest.mark.parametrize(
    "options, message",
    [
        (
            {"api_type": "azur", "api_key": "k"},
            "Unknown api_type 'azur': choose from openai, azure"
            " (sources.openai_fine_tuning.api_type)",
        ),
        (
            {"api_type": "azure", "api_key": "k"},
            "Azure OpenAI needs the resource endpoint: set sources.openai_fine_tuning.base_url"
            " or AZURE_OPENAI_ENDPOINT (https://<resource>.openai.azure.com)",
        ),
        (
            {"api_type": "azure", "base_url": "https://r.openai.azure.com"},
            "No Azure OpenAI key: set sources.openai_fine_tuning.api_key in .dlt/secrets.toml"
            " or AZURE_OPENAI_API_KEY (or an Entra ID token as azure_ad_token /"
            " AZURE_OPENAI_AD_TOKEN)",
        ),
        (
            {"api_type": "azure", "api_key": "k", "base_url": "https://r.openai.azure.com/openai"},
            "The Azure path /openai needs an API version: set"
            " sources.openai_fine_tuning.api_version or OPENAI_API_VERSION (or use /openai/v1,"
            " which needs none)",
        ),
        (
            {"api_key": "k", "api_version": VERSION},
            "api_version is only for Azure OpenAI: set sources.openai_fine_tuning.api_type"
            ' = "azure"',
        ),
    ],
)
def test_bad_azure_settings_name_the_setting(options, message):
    with pytest.raises(ConfigurationError) as error:
        openai_fine_tuning(**options)
    assert str(error.value) == message


@pytest.mark.parametrize(
    "endpoint, version, root",
    [
        ("https://r.openai.azure.com", None, "https://r.openai.azure.com/openai/v1"),
        ("https://r.openai.azure.com/", VERSION, "https://r.openai.azure.com/openai"),
        ("https://r.openai.azure.com/openai/v1/", VERSION, "https://r.openai.azure.com/openai/v1"),
    ],
)
def test_the_root_used_for_an_endpoint(endpoint, version, root):
    _, settings = build(api_type="azure", api_key="k", base_url=endpoint, api_version=version)
    assert settings.api_identity["base_url"] == root


class _ForwardingProxy:
    """An HTTP proxy on 127.0.0.1 that forwards each request it gets (absolute URI) and
    counts them: what a corporate proxy named by HTTP_PROXY sees."""

    def __init__(self) -> None:
        proxy = self
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # not itself

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                proxy.seen.append(self.path)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                upstream = urllib.request.Request(self.path, headers=headers)
                try:
                    with direct.open(upstream) as answer:
                        status, body, answer_headers = answer.status, answer.read(), answer.headers
                except urllib.error.HTTPError as error:
                    status, body, answer_headers = error.code, error.read(), error.headers
                self.send_response(status)
                for name, value in answer_headers.items():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.seen: list = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_proxy_named_by_the_environment_carries_every_request(loader, world, monkeypatch):
    # the environment's proxy settings are read once per client, not per request: they must
    # still apply to every page, file and content request
    proxy = _ForwardingProxy()
    try:
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("http_proxy", proxy.url)
        summary = loader.run(page_size=3)
    finally:
        proxy.close()
    assert len(proxy.seen) == loader.sandbox.stats.total == summary.requests
    assert all(seen.startswith(loader.sandbox.base_url + "/") for seen in proxy.seen)
    assert loader.sandbox.stats.by_route == first_load_routes(world, page_size=3)
    assert_history_equal_truth(loader, world)


@pytest.mark.parametrize(
    "env, setting",
    [
        ({"OPENAI_API_KEY": "sk-..."}, "sources.openai_fine_tuning.api_key or OPENAI_API_KEY"),
        (
            {
                "OPENAI_API_KEY": None,
                "SOURCES__OPENAI_FINE_TUNING__API_TYPE": "azure",
                "AZURE_OPENAI_ENDPOINT": "AZURE",
                "AZURE_OPENAI_API_KEY": "...",
            },
            "sources.openai_fine_tuning.api_key or AZURE_OPENAI_API_KEY",
        ),
    ],
)
def test_the_examples_placeholder_key_is_refused_before_any_request(cli, sandbox, env, setting):
    # `sk-...` as copied from .dlt/secrets.toml.example: said at once, not sent anywhere
    if env.get("AZURE_OPENAI_ENDPOINT") == "AZURE":
        env["AZURE_OPENAI_ENDPOINT"] = sandbox.azure_endpoint
    code, out, err = cli(env=env)
    assert (code, out) == (2, "")
    assert err == (
        "openai-ft: error: The API key is a placeholder (it has '...', as in"
        f" .dlt/secrets.toml.example): put your key in {setting}"
    )
    assert sandbox.stats.total == 0
