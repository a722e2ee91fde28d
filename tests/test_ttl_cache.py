"""The lookup cache behind API keys and webhook URLs: one load per missing key, however many wait."""

from __future__ import annotations

import asyncio

import pytest

from imagegate.ttl_cache import TtlCache


class Source:
    """A lookup that counts its calls and answers when released."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()
        self.error: Exception | None = None

    async def load(self) -> str:
        self.calls += 1
        await self.release.wait()
        if self.error is not None:
            raise self.error
        return f"value {self.calls}"


async def test_concurrent_misses_share_one_load() -> None:
    cache: TtlCache[str, str] = TtlCache(ttl_s=60)
    source = Source()
    waiting = [asyncio.create_task(cache.get("k", source.load)) for _ in range(50)]
    await asyncio.sleep(0)
    source.release.set()
    assert set(await asyncio.gather(*waiting)) == {"value 1"}
    assert source.calls == 1
    assert await cache.get("k", source.load) == "value 1"  # then from the cache
    assert source.calls == 1


async def test_an_expired_entry_is_loaded_again() -> None:
    cache: TtlCache[str, str] = TtlCache(ttl_s=0.05)
    source = Source()
    source.release.set()
    assert await cache.get("k", source.load) == "value 1"
    await asyncio.sleep(0.06)
    assert await cache.get("k", source.load) == "value 2"


async def test_a_failed_load_reaches_every_caller_and_is_not_cached() -> None:
    cache: TtlCache[str, str] = TtlCache(ttl_s=60)
    source = Source()
    source.error = ConnectionError("database down")
    waiting = [asyncio.create_task(cache.get("k", source.load)) for _ in range(3)]
    await asyncio.sleep(0)
    source.release.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(result, ConnectionError) for result in results)
    source.error = None
    assert await cache.get("k", source.load) == "value 2"


async def test_a_caller_that_leaves_does_not_cancel_the_others_load() -> None:
    cache: TtlCache[str, str] = TtlCache(ttl_s=60)
    source = Source()
    leaving = asyncio.create_task(cache.get("k", source.load))
    staying = asyncio.create_task(cache.get("k", source.load))
    await asyncio.sleep(0)
    leaving.cancel()
    source.release.set()
    assert await staying == "value 1"
    with pytest.raises(asyncio.CancelledError):
        await leaving


async def test_a_key_forgotten_while_loading_keeps_nothing_of_that_load() -> None:
    cache: TtlCache[str, str] = TtlCache(ttl_s=60)
    source = Source()
    first = asyncio.create_task(cache.get("k", source.load))
    await asyncio.sleep(0)
    cache.forget("k")  # changed meanwhile: the load under way may have read the old value
    source.release.set()
    assert await first == "value 1"
    assert await cache.get("k", source.load) == "value 2"
