"""The rate-limiter interface: a sliding window of requests per key.

A limiter counts a request only when it lets it through, so a client hammering a limited key
does not push its own window forward. Implement `hit` for another backend:

    class MyLimiter(RateLimiter):
        async def hit(self, key: str, limit: int) -> float | None:
            ...  # None: allowed and counted; else seconds until a slot frees up
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

from imagegate.errors import RateLimited

WINDOW_S = 60.0


class RateLimiter(ABC):
    window_s: float = WINDOW_S

    @abstractmethod
    async def hit(self, key: str, limit: int) -> float | None:
        """Count one request against ``key`` unless ``limit`` requests already fell in the window.

        Returns None when the request may proceed, else how many seconds until it could.
        """

    async def aclose(self) -> None:
        """Release connections; the in-process limiter has none."""
        return None


async def enforce(limiter: RateLimiter, key_id: str, rpm: int | None) -> None:
    """Raise 429 ``rate_limit_exceeded`` (with Retry-After) when ``key_id`` is over ``rpm``."""
    if rpm is None:
        return
    wait = await limiter.hit(f"rpm:{key_id}", rpm)
    if wait is None:
        return
    seconds = max(1, math.ceil(wait))
    raise RateLimited(
        f"Rate limit reached: this key may make {rpm} request(s) per minute. Try again in {seconds} s.",
        code="rate_limit_exceeded",
        headers={"Retry-After": str(seconds)},
    )
