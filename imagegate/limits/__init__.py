"""Rate limits: requests per minute per key, in-process or shared through Redis.

limiter = create_limiter(settings)          # Redis when settings.redis_url is set
await enforce(limiter, principal.key_id, principal.rpm)   # RateLimited (429) when over
await limiter.aclose()
"""

from __future__ import annotations

from imagegate.limits.base import RateLimiter, enforce
from imagegate.limits.memory import MemoryRateLimiter
from imagegate.settings import Settings


def create_limiter(settings: Settings) -> RateLimiter:
    if settings.redis_url:
        # Imported only when used, so a gateway without Redis needs no Redis client.
        from imagegate.limits.redis import RedisRateLimiter

        return RedisRateLimiter(settings.redis_url)
    return MemoryRateLimiter()


__all__ = ["MemoryRateLimiter", "RateLimiter", "create_limiter", "enforce"]
