"""ChannelRouter and ChannelHealth against real providers and fake upstreams on loopback."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from imagegate.domain import ImageRequest, ImageResult
from imagegate.errors import (
    GatewayError,
    NoHealthyChannel,
    RateLimited,
    UpstreamFailed,
    UpstreamRejected,
    UpstreamTimeout,
)
from imagegate.http import HttpClients
from imagegate.observability import RequestRecord
from imagegate.providers.registry import Catalog
from imagegate.services.channel_health import Breaker, ChannelHealth
from imagegate.services.routing import ChannelRouter, failure_kind
from imagegate.settings import load_settings
from tests.fakes.openai_upstream import FakeOpenAIUpstream

MODEL = "gpt-image-1"


def channel(name: str, upstream: FakeOpenAIUpstream | None = None, **config: Any) -> dict[str, Any]:
    base_url = upstream.base_url if upstream is not None else f"http://127.0.0.1:{closed_port()}/v1"
    return {
        "name": name,
        "provider": "openai",
        "base_url": base_url,
        "api_key": upstream.api_key if upstream is not None else "sk-nobody",
        "models": [MODEL],
        "timeout_s": 10,
        **config,
    }


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeOpenAIUpstream, FakeOpenAIUpstream]]:
    async with FakeOpenAIUpstream() as first, FakeOpenAIUpstream() as second:
        yield first, second


@pytest.fixture
async def build() -> AsyncIterator[Any]:
    """``build(channels, **settings)`` -> a router over a real catalog; closed after the test."""
    opened: list[tuple[Catalog, HttpClients]] = []

    def make(channels: list[dict[str, Any]], seed: int = 1, **overrides: Any) -> ChannelRouter:
        settings = load_settings(demo=False, channels=channels, **overrides)
        http = HttpClients.create(settings)
        catalog = Catalog(settings, http)
        opened.append((catalog, http))
        router = ChannelRouter.from_settings(catalog, settings)
        router.rng = random.Random(seed)
        return router

    yield make
    for catalog, http in opened:
        await catalog.aclose()
        await http.aclose()


def request(**fields: Any) -> ImageRequest:
    return ImageRequest(operation="generate", model=MODEL, prompt="a cat", size="1024x1024", **fields)


async def run(router: ChannelRouter, req: ImageRequest | None = None) -> tuple[str, RequestRecord]:
    """Run a request to its result inside a request record; the serving channel and the record."""
    record = RequestRecord(request_id="req_test", method="POST", endpoint="/v1/images/generations")
    served = None
    async for chosen, event in router.run(req or request(), record):
        if isinstance(event, ImageResult):
            served = chosen.name
    assert served is not None
    return served, record


async def test_a_500_fails_over_to_the_next_tier_and_both_attempts_are_recorded(
    fakes: Any, build: Any
) -> None:
    first, second = fakes
    first.fail_status = 500
    router = build([channel("a", first), channel("b", second, priority=1)])

    served, record = await run(router)

    assert served == "b" and record.channel == "b" and record.upstream_model == MODEL
    assert [(a["channel"], a["error"]) for a in record.attempts] == [("a", "upstream_error"), ("b", None)]
    assert len(first.requests) == 1 and len(second.requests) == 1


async def test_a_timeout_and_a_refused_connection_fail_over(fakes: Any, build: Any) -> None:
    first, second = fakes
    first.delay_s = 2.0
    router = build(
        [channel("slow", first, timeout_s=0.3), channel("gone"), channel("ok", second, priority=1)]
    )

    served, record = await run(router)

    assert served == "ok"
    errors = {a["channel"]: a["error"] for a in record.attempts}
    assert errors == {"slow": "upstream_timeout", "gone": "upstream_unreachable", "ok": None}


async def test_attempts_stop_at_route_max_attempts(fakes: Any, build: Any) -> None:
    first, second = fakes
    first.fail_status = second.fail_status = 503
    router = build(
        [channel("a", first), channel("b", second, priority=1), channel("c", priority=2)],
        route_max_attempts=2,
    )

    with pytest.raises(UpstreamFailed):
        await run(router)
    assert len(first.requests) == 1 and len(second.requests) == 1


async def test_client_errors_and_unknown_upstream_models_are_not_retried(fakes: Any, build: Any) -> None:
    first, second = fakes
    router = build([channel("a", first), channel("b", second, priority=1)])
    first.fail_status = 400
    with pytest.raises(UpstreamRejected):
        await run(router)
    first.fail_status = 404
    with pytest.raises(UpstreamFailed) as caught:
        await run(router)
    assert caught.value.code == "upstream_model_not_found"
    assert second.requests == []
    assert router.health.state("a").consecutive_failures == 0  # the upstream answered


async def test_no_retry_once_an_event_was_yielded(fakes: Any, build: Any) -> None:
    first, second = fakes
    first.stream_error = {"type": "server_error", "code": "server_error", "message": "boom"}
    router = build([channel("a", first), channel("b", second, priority=1)])

    seen = []
    with pytest.raises(UpstreamFailed, match="boom"):
        async for chosen, event in router.run(request(stream=True, partial_images=1)):
            seen.append((chosen.name, type(event).__name__))
    assert seen == [("a", "PartialImage")]
    assert second.requests == []
    assert router.health.state("a").consecutive_failures == 1
    assert router.health.state("a").in_flight == 0


async def test_a_stream_that_fails_before_its_first_byte_is_retried(fakes: Any, build: Any) -> None:
    first, second = fakes
    first.fail_status = 502
    router = build([channel("a", first), channel("b", second, priority=1)])

    events = [(c.name, type(e).__name__) async for c, e in router.run(request(stream=True, partial_images=2))]

    assert events == [("b", "PartialImage"), ("b", "PartialImage"), ("b", "ImageResult")]


async def test_an_auth_failure_disables_the_channel_and_warns(
    fakes: Any, build: Any, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = fakes
    first.api_key = "sk-the-upstream-wants-another-key"
    router = build([channel("a", first, api_key="sk-secret-we-sent-0000"), channel("b", second, priority=1)])
    logger = logging.getLogger("imagegate.routing")
    logger.addHandler(caplog.handler)
    try:
        assert (await run(router))[0] == "b"
        assert (await run(router))[0] == "b"
    finally:
        logger.removeHandler(caplog.handler)

    assert len(first.requests) == 1  # disabled after the first failure
    state = router.health.snapshot("a")
    assert state["disabled"] is True and "credentials" in state["disabled_reason"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("channel a disabled" in w for w in warnings)
    assert not any("sk-secret-we-sent" in r.getMessage() for r in caplog.records)


def test_quota_and_auth_failures_disable_other_failures_retry() -> None:
    assert failure_kind(RateLimited("quota", code="insufficient_quota")) == "disable"
    assert failure_kind(UpstreamFailed("quota", code="insufficient_quota")) == "disable"
    assert failure_kind(UpstreamFailed("auth", code="upstream_auth_failed")) == "disable"
    assert failure_kind(RateLimited("slow down")) == "retry"
    assert failure_kind(UpstreamTimeout("late")) == "retry"
    assert failure_kind(UpstreamFailed("down", code="upstream_unreachable")) == "retry"
    assert failure_kind(UpstreamRejected("no")) == "final"
    assert failure_kind(GatewayError("bug")) == "final"


async def test_every_channel_out_of_rotation_is_a_503_saying_why(fakes: Any, build: Any) -> None:
    first, _ = fakes
    router = build([channel("a", first), channel("b", first, priority=1)], breaker_failures=1)
    router.health.disable("a", "the upstream rejected the channel's credentials")
    router.health.record_failure("b", "upstream_error", "HTTP 500")

    with pytest.raises(NoHealthyChannel) as caught:
        await run(router)
    assert caught.value.status == 503
    assert "a (disabled: the upstream rejected" in caught.value.message
    assert "b (resting after repeated failures" in caught.value.message
    assert first.requests == []


async def test_the_breaker_rests_a_failing_channel_and_a_probe_restores_it(fakes: Any, build: Any) -> None:
    first, second = fakes
    now = [1000.0]
    router = build([channel("a", first), channel("b", second, priority=1)], breaker_failures=2)
    router.health = ChannelHealth(failures=2, cooldown_s=30, clock=lambda: now[0])
    first.fail_status = 500

    for _ in range(2):
        assert (await run(router))[0] == "b"
    assert router.health.breaker("a") is Breaker.OPEN
    assert (await run(router))[0] == "b"
    assert len(first.requests) == 2  # rested: not called

    now[0] += 31  # cooldown over: the next request probes, fails, and re-opens the breaker
    assert router.health.breaker("a") is Breaker.HALF_OPEN
    assert (await run(router))[0] == "b"
    assert len(first.requests) == 3 and router.health.breaker("a") is Breaker.OPEN

    now[0] += 31
    first.fail_status = None
    served, record = await run(router)
    assert served == "a" and [a["channel"] for a in record.attempts] == ["a"]
    assert router.health.breaker("a") is Breaker.CLOSED
    assert router.health.snapshot("a")["last_success_at"] is not None


def test_half_open_lets_exactly_one_probe_through() -> None:
    now = [0.0]
    health = ChannelHealth(failures=1, cooldown_s=5, clock=lambda: now[0])
    health.record_failure("a", "upstream_error", "x")
    assert health.try_acquire("a", None) is None
    now[0] = 6
    probe = health.try_acquire("a", None)
    assert probe is not None and probe.probe
    assert health.try_acquire("a", None) is None
    probe.release()  # cancelled without a verdict: the next request may probe
    again = health.try_acquire("a", None)
    assert again is not None and again.probe
    again.succeed()
    again.release()
    assert health.breaker("a") is Breaker.CLOSED and health.state("a").in_flight == 0


async def test_a_full_channel_sends_the_request_elsewhere(fakes: Any, build: Any) -> None:
    first, second = fakes
    router = build([channel("a", first, max_concurrency=1), channel("b", second, priority=1)])
    held = router.health.try_acquire("a", 1)
    assert held is not None

    assert (await run(router))[0] == "b"
    held.release()
    assert (await run(router))[0] == "a"


async def test_when_every_channel_is_full_the_request_waits_for_a_slot(fakes: Any, build: Any) -> None:
    first, _ = fakes
    router = build([channel("a", first, max_concurrency=1)])
    held = router.health.try_acquire("a", 1)
    assert held is not None

    task = asyncio.create_task(run(router))
    await asyncio.sleep(0.2)
    assert not task.done() and first.requests == []
    held.release()
    served, _ = await asyncio.wait_for(task, 20)
    assert served == "a"


async def test_a_slot_that_never_frees_ends_in_a_503(fakes: Any, build: Any) -> None:
    first, _ = fakes
    router = build([channel("a", first, max_concurrency=1, timeout_s=0.2)])
    held = router.health.try_acquire("a", 1)
    assert held is not None

    with pytest.raises(NoHealthyChannel, match="busy"):
        await run(router)
    held.release()


async def test_tiers_come_first_and_weights_shape_the_order_inside_a_tier(build: Any) -> None:
    router = build(
        [channel("heavy", weight=3), channel("light", weight=1), channel("backup", priority=1, weight=100)],
        seed=7,
    )
    firsts: Counter[str] = Counter()
    for _ in range(2000):
        order = [c.name for c in router.order(router.catalog.channels_for(MODEL))]
        assert order[-1] == "backup" and sorted(order[:2]) == ["heavy", "light"]
        firsts[order[0]] += 1
    assert 0.7 < firsts["heavy"] / 2000 < 0.8


def test_reset_forgets_verdicts_but_keeps_slots_in_flight() -> None:
    health = ChannelHealth(failures=1)
    lease = health.try_acquire("a", 2)
    assert lease is not None
    health.record_failure("a", "upstream_error", "x")
    health.disable("b", "the upstream rejected the channel's credentials")

    health.reset("a")
    health.reset("b")

    assert health.breaker("a") is Breaker.CLOSED and health.state("a").in_flight == 1
    assert health.snapshot("b")["disabled"] is False
    lease.release()
    assert health.state("a").in_flight == 0
