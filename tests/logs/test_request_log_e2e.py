"""Every API request leaves one log row, found by its X-Request-Id, written even at shutdown."""

from __future__ import annotations

import asyncio
import time

import httpx
import openai
import pytest

from imagegate.app import create_app
from imagegate.db.engine import create_engine
from imagegate.db.log_queries import get_log
from tests.admin.helpers import logs_of, wait_for_log
from tests.conftest import ADMIN_KEY, GatewayFactory, LiveGateway, ServerThread, free_port
from tests.fakes.openai_upstream import FakeOpenAIUpstream


def test_the_request_id_finds_the_log_row(gateway: LiveGateway) -> None:
    client = gateway.client()
    raw = client.images.with_raw_response.generate(
        model="demo", prompt="a red fox", size="1024x1024", quality="high", n=2, user="alice"
    )
    raw.parse()
    request_id = raw.headers["x-request-id"]
    row = wait_for_log(gateway, request_id)
    assert row["id"] == request_id
    assert (row["endpoint"], row["method"], row["status"]) == ("/v1/images/generations", "POST", 200)
    assert (row["model"], row["channel"], row["key_id"]) == ("demo", "demo", "admin")
    assert (row["n"], row["size"], row["quality"], row["user"], row["stream"]) == (
        2,
        "1024x1024",
        "high",
        "alice",
        False,
    )
    assert row["client_ip"] == "127.0.0.1"
    assert row["latency_ms"] >= row["ttfb_ms"] > 0
    assert row["error_code"] is None


def test_a_streamed_request_is_logged_as_a_stream(gateway: LiveGateway) -> None:
    client = gateway.client()
    with client.images.with_streaming_response.generate(
        model="demo", prompt="fox", stream=True, partial_images=1
    ) as response:
        request_id = response.headers["x-request-id"]
        for _ in response.iter_lines():
            pass
    row = wait_for_log(gateway, request_id)
    assert row["stream"] is True and row["status"] == 200 and row["error_code"] is None


def test_each_failed_request_appears_once_with_its_error(
    upstream_gateway: LiveGateway, upstream: FakeOpenAIUpstream
) -> None:
    client = upstream_gateway.client()
    upstream.fail_status = 500
    with pytest.raises(openai.APIStatusError) as failed:
        client.images.generate(model="gpt-image-1", prompt="x")
    upstream_failure = failed.value.response.headers["x-request-id"]
    with pytest.raises(openai.BadRequestError) as refused:
        client.images.generate(model="gpt-image-1", prompt="x", size="999x999")  # type: ignore[arg-type]
    bad_size = refused.value.response.headers["x-request-id"]
    with pytest.raises(openai.NotFoundError) as missing:
        client.images.generate(model="no-such-model", prompt="x")
    unknown_model = missing.value.response.headers["x-request-id"]

    row = wait_for_log(upstream_gateway, upstream_failure)
    assert row["status"] == failed.value.status_code >= 500
    assert row["error_type"] and row["error_code"] and row["error_message"]
    assert row["channel"] == "fake-openai"
    row = wait_for_log(upstream_gateway, bad_size)
    assert (row["status"], row["error_type"]) == (400, "invalid_request_error")
    row = wait_for_log(upstream_gateway, unknown_model)
    assert (row["status"], row["error_code"]) == (404, "model_not_found")

    ids = [row["id"] for row in logs_of(upstream_gateway, status="error")]
    assert sorted(ids) == sorted({upstream_failure, bad_size, unknown_model})


def test_an_error_after_the_stream_started_is_logged(
    upstream_gateway: LiveGateway, upstream: FakeOpenAIUpstream
) -> None:
    upstream.stream_error = {
        "message": "the upstream gave up",
        "type": "server_error",
        "code": "server_error",
    }
    client = upstream_gateway.client()
    with client.images.with_streaming_response.generate(
        model="gpt-image-1", prompt="fox", stream=True, partial_images=1
    ) as response:
        request_id = response.headers["x-request-id"]
        body = b"".join(response.iter_bytes())
    assert b"event: error" in body
    row = wait_for_log(upstream_gateway, request_id)
    assert row["status"] == 200 and row["error_code"] is not None
    assert [r["id"] for r in logs_of(upstream_gateway, status="error")] == [request_id]


def test_admin_and_health_calls_are_not_logged(gateway: LiveGateway) -> None:
    raw = gateway.client().models.with_raw_response.list()
    httpx.get(f"{gateway.url}/healthz")
    wait_for_log(gateway, raw.headers["x-request-id"])
    assert {row["endpoint"] for row in logs_of(gateway)} == {"/v1/models"}


def test_the_log_is_flushed_on_shutdown(make_gateway: GatewayFactory) -> None:
    settings = make_gateway().settings.model_copy(update={"port": free_port()})
    app = create_app(settings)
    server = ServerThread(app, settings.port)
    server.start()
    try:
        # Only the shutdown flush may write the row: no periodic flush in this test's lifetime.
        app.state.gateway.request_log.interval_s = 3600
        time.sleep(1)  # lets a flush tick that was already waiting pass
        response = httpx.post(
            f"http://127.0.0.1:{settings.port}/v1/images/generations",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            json={"model": "demo", "prompt": "bye"},
            timeout=30,
        )
    finally:
        server.stop()
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]

    async def find() -> dict[str, object] | None:
        engine = create_engine(settings.resolved_database_url)
        try:
            return await get_log(engine, request_id)
        finally:
            await engine.dispose()

    row = asyncio.run(find())
    assert row is not None and row["status"] == 200
