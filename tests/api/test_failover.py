"""Failover end to end: the openai SDK against a gateway with two fake upstreams behind one model."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest
import requests

from tests.conftest import ADMIN_KEY, GatewayFactory, LiveGateway, free_port, open_image
from tests.fakes.openai_upstream import FakeOpenAIUpstream

MODEL = "gpt-image-1"


class LogLines(logging.Handler):
    """Collects a logger's messages; the access line is written after the response, so tests wait."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self.changed:
            self.records.append(record)
            self.changed.notify_all()

    def access_line(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            for record in self.records:
                line: dict[str, Any] = json.loads(record.getMessage())
                if predicate(line):
                    return line
            return None

        with self.changed:
            assert self.changed.wait_for(lambda: find() is not None, timeout=20)
            found = find()
            assert found is not None
            return found


@pytest.fixture
def access_log() -> Iterator[LogLines]:
    handler = LogLines()
    logger = logging.getLogger("imagegate.access")  # propagate=False: attach to it directly
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


@pytest.fixture
def routing_log() -> Iterator[LogLines]:
    handler = LogLines()
    logger = logging.getLogger("imagegate.routing")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


@pytest.fixture
def first() -> Iterator[FakeOpenAIUpstream]:
    with FakeOpenAIUpstream() as fake:
        yield fake


@pytest.fixture
def second() -> Iterator[FakeOpenAIUpstream]:
    with FakeOpenAIUpstream() as fake:
        yield fake


def channel(name: str, upstream: FakeOpenAIUpstream, **config: Any) -> dict[str, Any]:
    return {
        "name": name,
        "provider": "openai",
        "base_url": upstream.base_url,
        "api_key": upstream.api_key,
        "models": [MODEL],
        "timeout_s": 20,
        **config,
    }


def two_channels(
    make_gateway: GatewayFactory,
    first: FakeOpenAIUpstream,
    second: FakeOpenAIUpstream,
    first_config: dict[str, Any] | None = None,
    **settings: Any,
) -> LiveGateway:
    channels = [channel("first", first, **(first_config or {})), channel("second", second, priority=1)]
    return make_gateway(channels=channels, log_level="INFO", **settings)


def generate(gateway: LiveGateway) -> Any:
    return gateway.client().images.generate(
        model=MODEL, prompt="a lighthouse", size="1024x1024", response_format="b64_json"
    )


def admin_channels(gateway: LiveGateway) -> dict[str, dict[str, Any]]:
    response = requests.get(f"{gateway.url}/admin/channels", headers=_admin(), timeout=20)
    assert response.status_code == 200
    return {item["name"]: item for item in response.json()["data"]}


def _admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_KEY}"}


def attempts(line: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(attempt["channel"], attempt["error"]) for attempt in line["attempts"]]


def test_a_500_from_the_first_upstream_is_served_by_the_second(
    make_gateway: GatewayFactory, first: FakeOpenAIUpstream, second: FakeOpenAIUpstream, access_log: LogLines
) -> None:
    first.fail_status = 500
    gateway = two_channels(make_gateway, first, second)

    result = generate(gateway)

    assert open_image(base64.b64decode(result.data[0].b64_json or "")).size == (1024, 1024)
    line = access_log.access_line(lambda line: line["endpoint"] == "/v1/images/generations")
    assert line["status"] == 200 and line["channel"] == "second"
    assert attempts(line) == [("first", "upstream_error"), ("second", None)]
    assert all(attempt["ms"] >= 0 for attempt in line["attempts"])


def test_a_timeout_on_the_first_upstream_is_served_by_the_second(
    make_gateway: GatewayFactory, first: FakeOpenAIUpstream, second: FakeOpenAIUpstream, access_log: LogLines
) -> None:
    first.delay_s = 2.0
    gateway = two_channels(make_gateway, first, second, {"timeout_s": 0.5})

    assert generate(gateway).data[0].b64_json
    line = access_log.access_line(lambda line: line["endpoint"] == "/v1/images/generations")
    assert attempts(line) == [("first", "upstream_timeout"), ("second", None)]


def test_a_refused_connection_is_served_by_the_second(
    make_gateway: GatewayFactory, first: FakeOpenAIUpstream, second: FakeOpenAIUpstream, access_log: LogLines
) -> None:
    gateway = two_channels(make_gateway, first, second, {"base_url": f"http://127.0.0.1:{free_port()}/v1"})

    assert generate(gateway).data[0].b64_json
    line = access_log.access_line(lambda line: line["endpoint"] == "/v1/images/generations")
    assert attempts(line) == [("first", "upstream_unreachable"), ("second", None)]


def test_a_400_from_the_first_upstream_reaches_the_client_without_a_retry(
    make_gateway: GatewayFactory, first: FakeOpenAIUpstream, second: FakeOpenAIUpstream
) -> None:
    first.fail_status = 400
    first.fail_body = {
        "error": {
            "message": "Your request was rejected by the safety system.",
            "type": "invalid_request_error",
            "param": None,
            "code": "moderation_blocked",
        }
    }
    gateway = two_channels(make_gateway, first, second)

    with pytest.raises(openai.BadRequestError) as caught:
        generate(gateway)
    assert caught.value.status_code == 400 and caught.value.code == "moderation_blocked"
    assert second.requests == []


def test_a_stream_never_retries_after_its_first_byte(
    make_gateway: GatewayFactory, first: FakeOpenAIUpstream, second: FakeOpenAIUpstream, access_log: LogLines
) -> None:
    first.stream_error = {"type": "server_error", "message": "the GPU caught fire", "code": "server_error"}
    gateway = two_channels(make_gateway, first, second)
    stream = gateway.client().images.generate(
        model=MODEL, prompt="x", size="1024x1024", stream=True, partial_images=1
    )

    received = []
    with pytest.raises(openai.APIError, match="GPU caught fire"):
        for event in stream:
            received.append(event.type)
    assert received == ["image_generation.partial_image"]
    assert second.requests == []
    line = access_log.access_line(lambda line: line["endpoint"] == "/v1/images/generations")
    assert attempts(line) == [("first", "upstream_error")]


def test_a_stream_that_fails_before_its_first_byte_moves_on(
    make_gateway: GatewayFactory, first: FakeOpenAIUpstream, second: FakeOpenAIUpstream
) -> None:
    first.fail_status = 503
    gateway = two_channels(make_gateway, first, second)
    stream = gateway.client().images.generate(
        model=MODEL, prompt="x", size="1024x1024", stream=True, partial_images=1
    )

    assert [event.type for event in stream] == [
        "image_generation.partial_image",
        "image_generation.completed",
    ]
    assert len(first.requests) == 1 and len(second.requests) == 1


def test_a_failing_channel_is_rested_then_restored_by_a_probe(
    make_gateway: GatewayFactory, first: FakeOpenAIUpstream, second: FakeOpenAIUpstream
) -> None:
    cooldown = 3.0
    first.fail_status = 500
    gateway = two_channels(make_gateway, first, second, breaker_failures=2, breaker_cooldown_s=cooldown)

    generate(gateway)
    generate(gateway)
    opened = time.monotonic()
    state = admin_channels(gateway)["first"]
    assert state["breaker"] == "open" and state["consecutive_failures"] == 2
    assert "upstream_error" in state["last_error"]

    generate(gateway)  # served by the second while the first rests
    if time.monotonic() - opened < cooldown:  # on a very slow machine the rest may already be over
        assert len(first.requests) == 2
    assert len(second.requests) == 3

    first.fail_status = None
    deadline = time.monotonic() + 30
    while admin_channels(gateway)["first"]["breaker"] != "half-open":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    served_before = len(second.requests)
    generate(gateway)  # the probe
    assert len(second.requests) == served_before
    state = admin_channels(gateway)["first"]
    assert state["breaker"] == "closed" and state["consecutive_failures"] == 0
    assert state["last_success_at"] is not None


def test_an_auth_failure_disables_the_channel_until_a_test_succeeds(
    make_gateway: GatewayFactory,
    first: FakeOpenAIUpstream,
    second: FakeOpenAIUpstream,
    routing_log: LogLines,
) -> None:
    first.api_key = "sk-the-key-first-really-wants"
    gateway = two_channels(make_gateway, first, second, {"api_key": "sk-stale-channel-key-1234"})

    generate(gateway)
    generate(gateway)

    assert len(first.requests) == 1 and len(second.requests) == 2
    state = admin_channels(gateway)["first"]
    assert state["disabled"] is True and "credentials" in state["disabled_reason"]
    messages = [record.getMessage() for record in routing_log.records]
    assert any(
        "channel first disabled" in m and r.levelno == logging.WARNING
        for m, r in zip(messages, routing_log.records, strict=True)
    )
    assert not any("sk-stale-channel-key" in m for m in messages)

    failed = requests.post(f"{gateway.url}/admin/channels/first/test", headers=_admin(), timeout=30).json()
    assert failed["ok"] is False and failed["error"]["code"] == "upstream_auth_failed"
    assert admin_channels(gateway)["first"]["disabled"] is True

    first.api_key = "sk-stale-channel-key-1234"  # the operator fixed the upstream side
    fixed = requests.post(f"{gateway.url}/admin/channels/first/test", headers=_admin(), timeout=30).json()
    assert fixed["ok"] is True and fixed["images"] == 1 and fixed["latency_ms"] > 0
    assert admin_channels(gateway)["first"]["disabled"] is False
    generate(gateway)
    assert len(second.requests) == 2  # back in rotation, first tier again


def test_a_full_channel_sends_a_concurrent_request_to_the_other(
    make_gateway: GatewayFactory, first: FakeOpenAIUpstream, second: FakeOpenAIUpstream
) -> None:
    first.delay_s = 2.0
    gateway = two_channels(make_gateway, first, second, {"max_concurrency": 1})
    slow = threading.Thread(target=generate, args=(gateway,))
    slow.start()
    try:
        deadline = time.monotonic() + 20
        while not first.requests:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        in_flight = admin_channels(gateway)["first"]
        assert in_flight["in_flight"] == 1 and in_flight["max_concurrency"] == 1
        generate(gateway)
        assert len(first.requests) == 1 and len(second.requests) == 1
    finally:
        slow.join(30)
    assert admin_channels(gateway)["first"]["in_flight"] == 0


def test_admin_channels_needs_the_admin_key(make_gateway: GatewayFactory, first: FakeOpenAIUpstream) -> None:
    gateway = make_gateway(channels=[channel("first", first)])
    url = f"{gateway.url}/admin/channels"

    missing = requests.get(url, timeout=20)
    assert missing.status_code == 401 and missing.json()["error"]["type"] == "invalid_request_error"
    user = gateway.create_key("user")
    denied = requests.get(url, headers={"Authorization": f"Bearer {user}"}, timeout=20)
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "admin_key_required"
    denied_test = requests.post(f"{url}/first/test", headers={"Authorization": f"Bearer {user}"}, timeout=20)
    assert denied_test.status_code == 403 and first.requests == []


_CONFIG_ONLY = {"base_url", "api_key_hint", "model_map", "options", "enabled", "source"}
_CONFIG_ONLY |= {"created_at", "updated_at"}


def test_admin_channels_lists_every_channel_and_tests_one(
    make_gateway: GatewayFactory, first: FakeOpenAIUpstream
) -> None:
    gateway = make_gateway(channels=[channel("first", first, weight=3, max_concurrency=4)])

    channels = admin_channels(gateway)
    assert set(channels) == {"first", "demo"}
    # The listing is the channel's config (one schema, secret-free) plus its live state.
    assert channels["first"]["source"] == "config" and channels["first"]["enabled"] is True
    assert {k: v for k, v in channels["first"].items() if k not in _CONFIG_ONLY} == {
        "name": "first",
        "provider": "openai",
        "models": [MODEL],
        "priority": 0,
        "weight": 3,
        "timeout_s": 20,
        "max_concurrency": 4,
        "in_flight": 0,
        "breaker": "closed",
        "consecutive_failures": 0,
        "disabled": False,
        "disabled_reason": None,
        "last_error": None,
        "last_error_at": None,
        "last_success_at": None,
    }
    assert first.api_key not in json.dumps(channels)

    result = requests.post(
        f"{gateway.url}/admin/channels/first/test", json={"model": MODEL}, headers=_admin(), timeout=30
    ).json()
    assert result["ok"] is True and result["channel"] == "first" and result["model"] == MODEL
    assert first.requests[-1].body["quality"] == "low" and first.requests[-1].body["n"] == 1
    assert admin_channels(gateway)["first"]["last_success_at"] is not None

    missing = requests.post(f"{gateway.url}/admin/channels/nope/test", headers=_admin(), timeout=20)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "channel_not_found"
    wrong_model = requests.post(
        f"{gateway.url}/admin/channels/first/test", json={"model": "demo"}, headers=_admin(), timeout=20
    )
    assert wrong_model.status_code == 400 and wrong_model.json()["error"]["param"] == "model"
