"""Exact billing end to end, on SQLite and on PostgreSQL: holds, charges, releases, the ledger.

Every test checks the money the way an operator would: the key's balance, and that it equals
the sum of the key's ledger.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import openai
import pytest
import requests

from tests.billing.accounts import DEMO_PRICE, PRICED_DEMO, entries, kinds, make_group, make_key, money
from tests.conftest import ADMIN_KEY, GatewayFactory, LiveGateway, openai_channel
from tests.db.conftest import database_url
from tests.fakes.openai_upstream import FakeOpenAIUpstream

__all__ = ["database_url"]  # the module-scoped SQLite/PostgreSQL fixture, used by every test here

# gpt-image-1's shipped per-token prices are micro-USD per token: text in 5, image in 10, out 40.
TEXT_IN, IMAGE_OUT = 5, 40


@pytest.fixture
def gw(make_gateway: GatewayFactory, database_url: str) -> LiveGateway:
    return make_gateway(database_url=database_url, **PRICED_DEMO)


@pytest.fixture
def upstream_gw(
    make_gateway: GatewayFactory, database_url: str, upstream: FakeOpenAIUpstream
) -> Iterator[LiveGateway]:
    yield make_gateway(
        database_url=database_url,
        stream_keepalive_s=0.2,
        channels=[openai_channel(upstream, ["gpt-image-1"], timeout_s=2)],
    )


def generate(gateway: LiveGateway, secret: str, **fields: Any) -> Any:
    return gateway.client(secret).images.generate(prompt="a red fox", **{"model": "demo", **fields})


def test_quota_for_exactly_five_images_under_fifty_concurrent_requests(gw: LiveGateway) -> None:
    key, secret = make_key(gw.settings.resolved_database_url, quota_usd=Decimal(5 * DEMO_PRICE) / 10**6)
    client = gw.client(secret, timeout=120)

    def attempt(_: int) -> str:
        try:
            client.images.generate(model="demo", prompt="race", size="1024x1024", quality="low")
        except openai.RateLimitError as error:
            assert error.response.headers["retry-after"]
            return str(error.code)
        return "ok"

    with ThreadPoolExecutor(max_workers=50) as pool:
        outcomes = list(pool.map(attempt, range(50)))
    assert outcomes.count("ok") == 5
    assert outcomes.count("insufficient_quota") == 45
    assert money(gw.settings.resolved_database_url, key.id) == (0, 0)
    assert sum(entry.amount_micros for entry in entries(gw.settings.resolved_database_url, key.id)) == 0


def test_a_success_charges_the_price_of_each_delivered_image(gw: LiveGateway) -> None:
    url = gw.settings.resolved_database_url
    key, secret = make_key(url, quota_usd="1")
    response = gw.client(secret).images.with_raw_response.generate(model="demo", prompt="two", n=2)
    request_id = response.headers["x-request-id"]
    assert len(response.parse().data) == 2
    held = 2 * DEMO_PRICE
    assert kinds(url, request_id) == [("hold", -held), ("release", held), ("charge", -2 * DEMO_PRICE)]
    assert money(url, key.id) == (1_000_000 - 2 * DEMO_PRICE,) * 2


def test_the_group_multiplier_scales_every_cost(gw: LiveGateway) -> None:
    url = gw.settings.resolved_database_url
    make_group(url, "premium", price_multiplier="2.5")
    key, secret = make_key(url, group="premium", quota_usd="1")
    generate(gw, secret)
    assert money(url, key.id) == (1_000_000 - 25_000,) * 2


def test_usage_is_billed_per_token(upstream_gw: LiveGateway, upstream: FakeOpenAIUpstream) -> None:
    url = upstream_gw.settings.resolved_database_url
    key, secret = make_key(url, quota_usd="1")
    response = upstream_gw.client(secret).images.with_raw_response.generate(
        model="gpt-image-1", prompt="a red fox", n=2, size="1024x1024", quality="low"
    )
    usage = response.parse().usage
    assert usage is not None and usage.output_tokens == 544
    cost = usage.input_tokens * TEXT_IN + usage.output_tokens * IMAGE_OUT
    charge = kinds(url, response.headers["x-request-id"])[-1]
    assert charge == ("charge", -cost)
    assert money(url, key.id) == (1_000_000 - cost,) * 2


def test_a_request_the_key_cannot_afford_is_refused_before_the_upstream(
    upstream_gw: LiveGateway, upstream: FakeOpenAIUpstream
) -> None:
    key, secret = make_key(upstream_gw.settings.resolved_database_url, quota_usd="0.01")
    with pytest.raises(openai.RateLimitError) as caught:
        upstream_gw.client(secret).images.generate(model="gpt-image-1", prompt="x", quality="high")
    assert caught.value.code == "insufficient_quota"
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert upstream.requests == []
    assert money(upstream_gw.settings.resolved_database_url, key.id) == (10_000, 10_000)


NOT_AN_IMAGE = {"created": 1, "data": [{"b64_json": "bm90IGFuIGltYWdl"}]}


@pytest.mark.parametrize(
    ("knobs", "status"),
    [
        ({"fail_status": 500}, 502),
        ({"delay_s": 4.0}, 504),  # the channel's timeout_s is 2
        ({"malformed": True}, 502),
        ({"fail_status": 200, "fail_body": NOT_AN_IMAGE}, 502),
    ],
    ids=["upstream-500", "timeout", "malformed-body", "not-an-image"],
)
def test_a_failed_upstream_call_costs_nothing(
    upstream_gw: LiveGateway, upstream: FakeOpenAIUpstream, knobs: dict[str, Any], status: int
) -> None:
    url = upstream_gw.settings.resolved_database_url
    key, secret = make_key(url, quota_usd="1")
    for name, value in knobs.items():
        setattr(upstream, name, value)
    with pytest.raises(openai.APIStatusError) as caught:
        upstream_gw.client(secret, timeout=30).images.generate(model="gpt-image-1", prompt="x")
    assert caught.value.status_code == status, caught.value.response.text
    request_id = caught.value.response.headers["x-request-id"]
    steps = kinds(url, request_id)
    assert [kind for kind, _ in steps] == ["hold", "release"]
    assert -steps[0][1] == steps[1][1] > 0
    assert money(url, key.id) == (1_000_000, 1_000_000)


def test_the_admin_key_is_never_billed(gw: LiveGateway) -> None:
    response = gw.client(ADMIN_KEY).images.with_raw_response.generate(model="demo", prompt="free")
    assert entries(gw.settings.resolved_database_url, request_id=response.headers["x-request-id"]) == []


def test_unlimited_keys_write_no_ledger_rows(gw: LiveGateway) -> None:
    key, secret = make_key(gw.settings.resolved_database_url)
    generate(gw, secret)
    assert money(gw.settings.resolved_database_url, key.id) == (None, 0)


# -- streams the client abandons ------------------------------------------------------------------


def _open_stream(gateway: LiveGateway, secret: str, **body: Any) -> requests.Response:
    response = requests.post(
        f"{gateway.url}/v1/images/generations",
        json={"prompt": "a red fox", "stream": True, **body},
        headers={"Authorization": f"Bearer {secret}"},
        stream=True,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response


def _wait_for(condition: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the gateway"
        time.sleep(0.05)


def test_leaving_after_the_upstream_finished_still_pays_for_every_image(gw: LiveGateway) -> None:
    url = gw.settings.resolved_database_url
    key, secret = make_key(url, quota_usd="1")
    response = _open_stream(gw, secret, model="demo", n=3, partial_images=1)
    request_id = response.headers["x-request-id"]
    lines = response.iter_lines()
    assert any(line.startswith(b"event: image_generation.completed") for line in lines)
    response.close()  # two of the three images never reached the client
    assert kinds(url, request_id)[-1] == ("charge", -3 * DEMO_PRICE)
    assert money(url, key.id) == (1_000_000 - 3 * DEMO_PRICE,) * 2


def test_leaving_before_the_upstream_finished_releases_the_hold(
    upstream_gw: LiveGateway, upstream: FakeOpenAIUpstream
) -> None:
    url = upstream_gw.settings.resolved_database_url
    key, secret = make_key(url, quota_usd="1")
    upstream.delay_s = 2.0
    response = _open_stream(upstream_gw, secret, model="gpt-image-1")
    request_id = response.headers["x-request-id"]
    _wait_for(lambda: len(upstream.requests) == 1)
    assert kinds(url, request_id)[0][0] == "hold"
    response.close()
    _wait_for(lambda: len(kinds(url, request_id)) == 2)
    assert [kind for kind, _ in kinds(url, request_id)] == ["hold", "release"]
    assert money(url, key.id) == (1_000_000, 1_000_000)
