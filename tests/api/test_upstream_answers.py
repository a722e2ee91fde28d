"""An upstream's answer is checked before any money moves (SPEC §8).

Every image is read far enough to know its real format and size and that it is whole; bytes that
are not an image are a 502, a result that cannot be stored is a 503 — both free — and an image of
another size than asked is reported, and charged, as what it is.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import openai
import pytest
import requests

from tests.billing.accounts import kinds, make_key, money
from tests.conftest import GatewayFactory, LiveGateway, image_bytes, open_image
from tests.fakes.openai_upstream import FakeOpenAIUpstream

QUOTA = 1_000_000  # micro-USD: $1
PRICES = {"per_image": {"1024x1024": 0.04, "64x64": 0.001, "default": 0.02}}


@pytest.fixture
def priced(make_gateway: GatewayFactory, upstream: FakeOpenAIUpstream) -> Iterator[LiveGateway]:
    yield make_gateway(
        stream_keepalive_s=0.2,
        channels=[
            {
                "name": "fake-openai",
                "provider": "openai",
                "base_url": upstream.base_url,
                "api_key": upstream.api_key,
                "models": ["gpt-image-1"],
                "timeout_s": 5,
            }
        ],
        models={"gpt-image-1": {"price": PRICES}},
    )


def _key(gateway: LiveGateway) -> tuple[str, str]:
    key, secret = make_key(gateway.settings.resolved_database_url, quota_usd="1")
    return key.id, secret


def _html_after_png_header() -> bytes:
    png = image_bytes((1024, 1024))
    return png[:64] + b"<!doctype html><html><body>Service temporarily unavailable</body></html>"


def _assert_free(gateway: LiveGateway, key_id: str, request_id: str) -> None:
    url = gateway.settings.resolved_database_url
    assert [kind for kind, _ in kinds(url, request_id)] == ["hold", "release"]
    assert money(url, key_id) == (QUOTA, QUOTA)


@pytest.mark.parametrize("output_format", ["png", "jpeg"])
def test_html_behind_a_png_header_is_a_502_and_costs_nothing(
    priced: LiveGateway, upstream: FakeOpenAIUpstream, output_format: str
) -> None:
    upstream.image_bytes = _html_after_png_header()
    upstream.force_format = "png"
    key_id, secret = _key(priced)
    with pytest.raises(openai.APIStatusError) as caught:
        priced.client(secret).images.generate(
            model="gpt-image-1",
            prompt="x",
            size="1024x1024",
            output_format=output_format,  # type: ignore[arg-type]
        )
    assert caught.value.status_code == 502
    assert caught.value.code == "upstream_bad_response"
    _assert_free(priced, key_id, caught.value.response.headers["x-request-id"])


def test_a_truncated_png_streamed_is_an_error_event_and_costs_nothing(
    priced: LiveGateway, upstream: FakeOpenAIUpstream
) -> None:
    upstream.image_bytes = image_bytes((1024, 1024))[:-40]
    key_id, secret = _key(priced)
    response = requests.post(
        f"{priced.url}/v1/images/generations",
        headers={"Authorization": f"Bearer {secret}"},
        json={"model": "gpt-image-1", "prompt": "x", "size": "1024x1024", "stream": True},
        timeout=30,
    )
    assert response.status_code == 200
    assert "event: error" in response.text and "upstream_bad_response" in response.text
    assert "image_generation.completed" not in response.text
    _assert_free(priced, key_id, response.headers["x-request-id"])


def test_an_image_smaller_than_asked_is_reported_and_charged_as_made(
    priced: LiveGateway, upstream: FakeOpenAIUpstream
) -> None:
    upstream.made_size = "64x64"
    key_id, secret = _key(priced)
    response = priced.client(secret).images.with_raw_response.generate(
        model="gpt-image-1", prompt="x", size="1024x1024", response_format="b64_json"
    )
    body = response.parse()
    assert body.size == "64x64"
    assert open_image(_b64(body.data[0].b64_json)).size == (64, 64)
    url = priced.settings.resolved_database_url
    assert kinds(url, response.headers["x-request-id"])[-1] == ("charge", -1_000)
    assert money(url, key_id) == (QUOTA - 1_000,) * 2


def test_a_result_that_cannot_be_stored_is_a_503_and_costs_nothing(priced: LiveGateway) -> None:
    key_id, secret = _key(priced)
    # Where today's images would go, a file: every write under it fails as a full disk would.
    images_dir: Path = priced.settings.images_dir
    images_dir.mkdir(parents=True, exist_ok=True)
    for day in _days_around_now():
        (images_dir / day).write_bytes(b"")
    with pytest.raises(openai.APIStatusError) as caught:
        priced.client(secret).images.generate(model="gpt-image-1", prompt="x", response_format="url")
    assert caught.value.status_code == 503
    assert caught.value.code == "storage_unavailable"
    _assert_free(priced, key_id, caught.value.response.headers["x-request-id"])


def test_the_echo_follows_the_image_made_when_the_upstream_says_nothing(
    priced: LiveGateway, upstream: FakeOpenAIUpstream
) -> None:
    upstream.image_bytes = image_bytes((64, 32), fmt="JPEG")
    body = priced.client().images.generate(model="gpt-image-1", prompt="x", response_format="b64_json")
    assert body.size == "64x32"
    assert body.output_format == "jpeg"
    assert open_image(_b64(body.data[0].b64_json)).format == "JPEG"


def _b64(text: Any) -> bytes:
    return base64.b64decode(text)


def _days_around_now() -> list[str]:
    now = datetime.now(UTC)
    return sorted({(now + timedelta(hours=hours)).strftime("%Y%m%d") for hours in (-24, 0, 24)})
