"""A submit reads the key's default webhook URL from a short cache (`TaskStore.key_webhook_url`).

A change made through the same store applies to the next submit; one made elsewhere (another
process) applies once the cache's time is up, as key changes do in `services.auth`.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.db.keys import KeyStore
from imagegate.db.tasks import TaskStore
from tests.db.conftest import database_url, engine

__all__ = ["database_url", "engine"]


async def new_key(engine: AsyncEngine) -> str:
    key, _secret = await KeyStore(engine).create("webhooks")
    return key.id


async def test_a_change_through_the_store_applies_at_once(engine: AsyncEngine) -> None:
    store, key = TaskStore(engine, key_cache_ttl_s=3600), await new_key(engine)
    assert await store.key_webhook_url(key) is None
    await store.set_key_webhook(key, url="https://hooks.example/a")
    assert await store.key_webhook_url(key) == "https://hooks.example/a"
    await store.set_key_webhook(key, url=None)
    assert await store.key_webhook_url(key) is None


async def test_a_change_elsewhere_applies_after_the_cache_time(engine: AsyncEngine) -> None:
    submitting, elsewhere = TaskStore(engine, key_cache_ttl_s=0.3), TaskStore(engine)
    key = await new_key(engine)
    assert await submitting.key_webhook_url(key) is None
    await elsewhere.set_key_webhook(key, url="https://hooks.example/b")
    assert await submitting.key_webhook_url(key) is None  # still the cached answer
    await asyncio.sleep(0.35)
    assert await submitting.key_webhook_url(key) == "https://hooks.example/b"
