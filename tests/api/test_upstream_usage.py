"""Impossible usage from an upstream is a 502 upstream_malformed before any money moves: the
client gets OpenAI's error envelope (or an SSE error event), the key keeps its balance, and the
request log keeps working."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest

from tests.admin.helpers import wait_for_log
from tests.billing.accounts import make_key, money
from tests.conftest import LiveGateway
from tests.fakes.openai_upstream import FakeOpenAIUpstream

BAD_USAGE: list[Any] = [
    {"input_tokens": 10, "output_tokens": -1000},
    {"input_tokens": 10**19, "output_tokens": 1},
    {"input_tokens": 1.5e20, "output_tokens": 1},
    {"input_tokens": 1, "output_tokens": 10**12},
    {"input_tokens": 1, "output_tokens": 1, "input_tokens_details": [1, 2]},
]


@pytest.mark.parametrize("usage", BAD_USAGE, ids=["negative", "1e19", "1.5e20", "1e12", "details-list"])
def test_impossible_usage_is_a_502_and_costs_nothing(
    upstream_gateway: LiveGateway, upstream: FakeOpenAIUpstream, usage: Any
) -> None:
    url = upstream_gateway.settings.resolved_database_url
    key, secret = make_key(url, "usage", quota_usd=Decimal("1"))
    upstream.usage = usage
    sdk = upstream_gateway.client(api_key=secret)
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.images.generate(model="gpt-image-1", prompt="a fox", size="1024x1024")
    assert caught.value.status_code == 502
    assert isinstance(caught.value.body, dict) and caught.value.body["code"] == "upstream_malformed"
    assert caught.value.body["type"] == "upstream_malformed"

    body = {
        "model": "gpt-image-1",
        "prompt": "a fox",
        "size": "1024x1024",
        "stream": True,
        "partial_images": 1,
    }
    streamed = httpx.post(
        f"{upstream_gateway.url}/v1/images/generations",
        json=body,
        headers={"Authorization": f"Bearer {secret}"},
        timeout=30,
    )
    assert "event: error" in streamed.text and "upstream_malformed" in streamed.text
    row = wait_for_log(upstream_gateway, streamed.headers["x-request-id"])
    assert row["error_code"] == "upstream_malformed"

    balance, total = money(url, key.id)
    assert balance == total == 1_000_000  # nothing held, nothing charged
