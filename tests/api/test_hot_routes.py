"""The image and chat endpoints are dispatched outside FastAPI's stack (`imagegate.api.hot_routes`).

Nothing about them may differ from the other routes: an unexpected error is an OpenAI-style 500
with the request id, the gateway goes on serving, and a hot path called with another method is
FastAPI's own 405 in the same envelope.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from imagegate.app import create_app
from imagegate.services.gateway import Gateway
from imagegate.settings import load_settings
from tests.conftest import ADMIN_KEY, ServerThread, free_port
from tests.fakes.provider import FakeProvider

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
BODY = {"model": "m", "prompt": "a lantern", "response_format": "b64_json"}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, FakeProvider]]:
    port = free_port()
    settings = load_settings(
        data_dir=tmp_path / "data",
        port=port,
        admin_key=ADMIN_KEY,
        log_level="WARNING",
        channels=[{"name": "fake", "provider": "fake", "models": ["m"]}],
    )
    app: FastAPI = create_app(settings)
    server = ServerThread(app, port)
    server.start()
    gateway: Gateway = app.state.gateway
    provider = gateway.catalogs.current.channels_for("m")[0].provider
    assert isinstance(provider, FakeProvider)
    yield f"http://127.0.0.1:{port}", provider
    server.stop()


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
