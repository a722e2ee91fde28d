"""An in-process sliding-window limiter: exact, cheap, and per process (no Redis needed)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from imagegate.limits.base import RateLimiter

# Windows of keys idle for a whole window are dropped once this many keys are tracked.
_SWEEP_AT = 10_000


class MemoryRateLimiter(RateLimiter):
    """Timestamps of the requests let through in the last window, per key.

    No locks: ``hit`` never awaits, so on one event loop each call runs to completion alone.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._windows: dict[str, deque[float]] = {}

    async def hit(self, key: str, limit: int) -> float | None:
        now = self._clock()
        window = self._windows.get(key)
        if window is None:
            if len(self._windows) >= _SWEEP_AT:
                self._sweep(now)
            window = self._windows[key] = deque()
        start = now - self.window_s
        while window and window[0] <= start:
            window.popleft()
        if len(window) >= limit:
            return window[0] + self.window_s - now
        window.append(now)
        return None

    def _sweep(self, now: float) -> None:
        start = now - self.window_s
        for key in [key for key, window in self._windows.items() if not window or window[-1] <= start]:
            del self._windows[key]
