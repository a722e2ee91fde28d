"""The Redis limiter: one window shared by every process, and open doors when Redis is down.

Skips when no Redis answers on ``IMAGEGATE_TEST_REDIS`` (default redis://127.0.0.1:6379/0); fails
then under CI=true.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator

import openai
import pytest

from imagegate.limits.redis import RedisRateLimiter
from tests.billing.accounts import make_key
from tests.conftest import REDIS_URL, GatewayFactory

# Skips without Redis, fails under CI=true (tests.conftest.service_missing).
needs_redis = pytest.mark.usefixtures("redis_url")


@pytest.fixture
async def limiters() -> AsyncIterator[tuple[RedisRateLimiter, RedisRateLimiter]]:
    pair = (RedisRateLimiter(REDIS_URL), RedisRateLimiter(REDIS_URL))
    yield pair
    for limiter in pair:
        await limiter.aclose()


@needs_redis
async def test_two_limiters_share_one_window(limiters: tuple[RedisRateLimiter, RedisRateLimiter]) -> None:
    first, second = limiters
    key = f"test:{secrets.token_hex(8)}"
    assert await first.hit(key, 3) is None
    assert await second.hit(key, 3) is None
    assert await first.hit(key, 3) is None
    wait = await second.hit(key, 3)
    assert wait is not None and 0 < wait <= 60


@needs_redis
async def test_concurrent_hits_admit_exactly_the_limit(
    limiters: tuple[RedisRateLimiter, RedisRateLimiter],
) -> None:
    key = f"test:{secrets.token_hex(8)}"
    results = await asyncio.gather(*(limiters[i % 2].hit(key, 7) for i in range(40)))
    assert sum(result is None for result in results) == 7


async def test_an_unreachable_redis_lets_requests_through() -> None:
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0", timeout_s=0.5)
    try:
        for _ in range(3):
            assert await limiter.hit("k", 1) is None
    finally:
        await limiter.aclose()


@needs_redis
def test_gateways_sharing_redis_share_the_rpm_limit(make_gateway: GatewayFactory, tmp_path: object) -> None:
    first = make_gateway(redis_url=REDIS_URL)
    database = first.settings.resolved_database_url
    second = make_gateway(redis_url=REDIS_URL, database_url=database)
    _, secret = make_key(database, rpm=3)
    first.client(secret).models.list()
    second.client(secret).models.list()
    first.client(secret).models.list()
    with pytest.raises(openai.RateLimitError) as caught:
        second.client(secret).models.list()
    assert caught.value.code == "rate_limit_exceeded"
    assert int(caught.value.response.headers["retry-after"]) >= 1


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_a_gateway_whose_redis_is_down_still_serves(make_gateway: GatewayFactory) -> None:
    """rpm=1, Redis unreachable: every request is served (the limiter opens), and the operator is told."""
    warnings = _Warnings()
    logging.getLogger("imagegate.limits").addHandler(warnings)
    try:
        gateway = make_gateway(redis_url="redis://127.0.0.1:1/0")
        _, secret = make_key(gateway.settings.resolved_database_url, rpm=1)
        client = gateway.client(secret)
        served = [[model.id for model in client.models.list().data] for _ in range(3)]
        generated = client.images.generate(model="demo", prompt="a fox", response_format="b64_json")
    finally:
        logging.getLogger("imagegate.limits").removeHandler(warnings)

    assert all("demo" in models for models in served), served
    assert generated.data and generated.data[0].b64_json
    # The limiter was consulted (an in-memory one would have refused the second request) and said
    # why it let requests through, once: the warning is rate-limited itself.
    assert len(warnings.messages) == 1, warnings.messages
    assert "letting requests through" in warnings.messages[0]
