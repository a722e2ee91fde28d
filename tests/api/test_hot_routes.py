"""The image and chat endpoints are dispatched outside FastAPI's stack (`imagegate.api.hot_routes`).

Nothing about them may differ from the other routes: an unexpected error is an OpenAI-style 500
with the request id, the gateway goes on serving, and a hot path called with another method is
FastAPI's own 405 in the same envelope.
"""

from __future__ import annotations

import logging

import httpx
import pytest

from imagegate.services.gateway import Gateway
from tests.conftest import ADMIN_KEY, GatewayFactory
from tests.fakes.provider import FakeProvider

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
BODY = {"model": "m", "prompt": "a lantern", "response_format": "b64_json"}


@pytest.fixture
def served(make_gateway: GatewayFactory) -> tuple[str, FakeProvider]:
    gateway = make_gateway(channels=[{"name": "fake", "provider": "fake", "models": ["m"]}])
    assert gateway.app is not None
    running: Gateway = gateway.app.state.gateway
    provider = running.catalogs.current.channels_for("m")[0].provider
    assert isinstance(provider, FakeProvider)
    return gateway.url, provider


def test_an_unexpected_error_is_an_openai_style_500(
    served: tuple[str, FakeProvider], caplog: pytest.LogCaptureFixture
) -> None:
    url, provider = served
    provider.enqueue(RuntimeError("a bug, not an upstream failure"))
    with caplog.at_level(logging.ERROR, logger="imagegate.errors"):
        response = httpx.post(f"{url}/v1/images/generations", json=BODY, headers=AUTH, timeout=30)
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["type"] == "server_error"
    assert "a bug" not in error["message"]  # the traceback goes to the log, not to the client
    assert response.headers["x-request-id"].startswith("req_")
    assert any("unhandled error on POST /v1/images/generations" in r.getMessage() for r in caplog.records)
    # The gateway goes on serving.
    again = httpx.post(f"{url}/v1/images/generations", json=BODY, headers=AUTH, timeout=30)
    assert again.status_code == 200
    assert again.json()["data"][0]["b64_json"]


@pytest.mark.parametrize("path", ["/v1/images/generations", "/v1/images/edits", "/v1/chat/completions"])
def test_a_hot_path_with_another_method_is_405(served: tuple[str, FakeProvider], path: str) -> None:
    url, _ = served
    response = httpx.get(f"{url}{path}", headers=AUTH, timeout=30)
    assert response.status_code == 405
    assert response.json()["error"]["message"] == "Method Not Allowed"
    assert response.headers["x-request-id"].startswith("req_")
