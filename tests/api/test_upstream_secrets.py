"""An upstream error that quotes the channel's key: the key reaches no client, no stream event,
no request-log row and no access-log line, whichever provider and however the client asked.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
import pytest

from tests.admin.helpers import logs_of, wait_for_log
from tests.conftest import ADMIN_KEY, GatewayFactory, LiveGateway
from tests.fakes.chat_image_upstream import FakeChatImageUpstream
from tests.fakes.gemini_upstream import FakeGeminiUpstream
from tests.fakes.openai_upstream import FakeOpenAIUpstream

MODELS = {
    "openai": "gpt-image-1",
    "openai-chat-image": "gpt-image-2-chat",
    "gemini": "gemini-2.5-flash-image",
}


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def access_log() -> Iterator[Captured]:
    handler = Captured()
    logger = logging.getLogger("imagegate.access")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


@pytest.fixture
def upstreams() -> Iterator[dict[str, FakeOpenAIUpstream | FakeChatImageUpstream | FakeGeminiUpstream]]:
    fakes = {
        "openai": FakeOpenAIUpstream(),
        "openai-chat-image": FakeChatImageUpstream(),
        "gemini": FakeGeminiUpstream(),
    }
    for fake in fakes.values():
        fake.start_in_thread()
    yield fakes  # type: ignore[misc]
    for fake in fakes.values():
        fake.stop()


@pytest.fixture
def leaky_gateway(
    make_gateway: GatewayFactory,
    upstreams: dict[str, FakeOpenAIUpstream | FakeChatImageUpstream | FakeGeminiUpstream],
) -> LiveGateway:
    channels = [
        {
            "name": f"ch-{kind}",
            "provider": kind,
            "base_url": fake.base_url,
            "api_key": fake.api_key,
            "models": [MODELS[kind]],
            "timeout_s": 10,
        }
        for kind, fake in upstreams.items()
    ]
    # INFO: the access log is written at that level.
    return make_gateway(channels=channels, log_level="INFO")


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("status", [422, 500])
@pytest.mark.parametrize("kind", list(MODELS))
def test_the_key_an_upstream_error_quotes_reaches_no_client_and_no_log(
    leaky_gateway: LiveGateway,
    upstreams: dict[str, FakeOpenAIUpstream | FakeChatImageUpstream | FakeGeminiUpstream],
    access_log: Captured,
    kind: str,
    status: int,
    stream: bool,
) -> None:
    fake = upstreams[kind]
    fake.echo_key_in_errors(status)
    body = {"model": MODELS[kind], "prompt": "a lighthouse", "size": "1024x1024", "stream": stream}
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    response = httpx.post(
        f"{leaky_gateway.url}/v1/images/generations", json=body, headers=headers, timeout=30
    )
    if stream:
        assert response.status_code == 200 and "event: error" in response.text, response.text
    else:
        assert response.status_code == (400 if status == 422 else 502), response.text
    assert "***" in response.text  # the upstream's own words came through, masked
    assert fake.api_key not in response.text

    row = wait_for_log(leaky_gateway, response.headers["x-request-id"])
    assert row["error_code"] and fake.api_key not in json.dumps(logs_of(leaky_gateway))
    lines = [line for line in access_log.lines if response.headers["x-request-id"] in line]
    assert lines and all(fake.api_key not in line for line in lines)
