"""A cache of lookups that expire after a few seconds, where a missing entry is loaded once.

Without the "once", every entry's expiry is a herd: fifty requests in flight for one API key all
miss together and all go to the database (opening pool connections beyond its size), which
stalled a burst of task submits for ~100 ms once a second. Here concurrent callers of a missing
key share one load; a load that fails is not cached, and each caller sees its error.

    keys = TtlCache[str, ApiKey | None](ttl_s=1.0)
    key = await keys.get(digest, lambda: store.authenticate(secret))
    keys.forget(digest)   # or keys.clear(): changed here, so the next get loads afresh
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    def __init__(self, ttl_s: float, *, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[K, tuple[float, V]] = {}
        self._loading: dict[K, asyncio.Future[V]] = {}

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        entry = self._entries.get(key)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        loading = self._loading.get(key)
        if loading is None:
            loading = asyncio.ensure_future(self._load(key, load))
            self._loading[key] = loading
        # Shielded: a caller that goes away does not cancel the load the others wait for.
        return await asyncio.shield(loading)

    def forget(self, key: K) -> None:
        self._entries.pop(key, None)
        self._loading.pop(key, None)  # a load already running may read the old value: not kept

    def clear(self) -> None:
        self._entries.clear()
        self._loading.clear()

    async def _load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        this = asyncio.current_task()
        try:
            value = await load()
        finally:
            if self._loading.get(key) is this:
                del self._loading[key]
                keep = True
            else:
                keep = False  # forgotten while loading
        if keep:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key] = (time.monotonic() + self.ttl_s, value)
        return value
