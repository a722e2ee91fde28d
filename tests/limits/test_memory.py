"""The in-process sliding window: exact counts, retry times, and only admitted requests count."""

from __future__ import annotations

import pytest

from imagegate.errors import RateLimited
from imagegate.limits import MemoryRateLimiter, enforce


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_the_window_slides() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock)
    assert await limiter.hit("k", 2) is None
    clock.now += 20
    assert await limiter.hit("k", 2) is None
    clock.now += 10
    assert await limiter.hit("k", 2) == pytest.approx(30)  # the first request leaves at t+60
    clock.now += 30
    assert await limiter.hit("k", 2) is None
    assert await limiter.hit("k", 2) == pytest.approx(20)


async def test_refused_requests_do_not_count_and_keys_are_separate() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock)
    assert await limiter.hit("a", 1) is None
    for _ in range(5):
        assert await limiter.hit("a", 1) is not None
    assert await limiter.hit("b", 1) is None
    clock.now += 60
    assert await limiter.hit("a", 1) is None


async def test_enforce_raises_429_with_retry_after() -> None:
    limiter = MemoryRateLimiter(Clock())
    await enforce(limiter, "key_1", None)  # no limit: never counted
    await enforce(limiter, "key_1", 1)
    with pytest.raises(RateLimited) as caught:
        await enforce(limiter, "key_1", 1)
    assert caught.value.status == 429 and caught.value.code == "rate_limit_exceeded"
    assert caught.value.headers["Retry-After"] == "60"


async def test_idle_keys_are_swept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("imagegate.limits.memory._SWEEP_AT", 3)
    clock = Clock()
    limiter = MemoryRateLimiter(clock)
    for key in ("a", "b", "c"):
        await limiter.hit(key, 5)
    clock.now += 61
    await limiter.hit("d", 5)
    assert set(limiter._windows) == {"d"}
