"""A sliding-window limiter in Redis, shared by every gateway process that uses the same server.

One Lua script per request trims the key's window, counts it and adds the request atomically,
timed by the Redis server's clock so processes on different hosts agree. When Redis cannot be
reached the limiter lets requests through (and logs it): a rate limit is a safeguard, and an
outage of it should not become an outage of the gateway.
"""

from __future__ import annotations

import logging
import secrets
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from imagegate.limits.base import RateLimiter

logger = logging.getLogger("imagegate.limits")

KEY_PREFIX = "imagegate:"
_WARN_EVERY_S = 10.0

# Returns 0 when the request is counted, else milliseconds until the oldest one leaves.
_SLIDING_WINDOW = """
local window = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
"""


class RedisRateLimiter(RateLimiter):
    def __init__(self, url: str, *, timeout_s: float = 1.0) -> None:
        self._redis = Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._script = self._redis.register_script(_SLIDING_WINDOW)
        self._warned_at = -_WARN_EVERY_S

    async def hit(self, key: str, limit: int) -> float | None:
        member = f"{time.time_ns()}-{secrets.token_hex(4)}"
        window_ms = int(self.window_s * 1000)
        try:
            wait_ms = int(await self._script(keys=[KEY_PREFIX + key], args=[limit, window_ms, member]))
        except (RedisError, OSError) as exc:
            self._warn(exc)
            return None
        return None if wait_ms == 0 else wait_ms / 1000

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY_S:
            self._warned_at = now
            logger.warning("Redis rate limiter unavailable, letting requests through: %s", exc)

    async def aclose(self) -> None:
        await self._redis.aclose()
