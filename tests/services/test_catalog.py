"""The live catalog: a channel written through one process's store reaches every process's
catalog through the ``channels`` config version (polling, or Redis pub/sub when configured),
reusing unchanged providers; prices follow the same version mechanism.

Two "processes" here are two sets of engine, store, pool and watcher on one database file.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from imagegate.billing.prices import PRICES_VERSION, PriceBook
from imagegate.db import migrate
from imagegate.db.channels import ChannelStore
from imagegate.db.engine import create_engine
from imagegate.db.versions import ConfigVersions, VersionWatcher
from imagegate.providers.pool import ProviderPool
from imagegate.services.catalog import CatalogService
from imagegate.settings import ChannelConfig, Settings
from tests.fakes.provider import FakeProvider

SETTINGS = Settings(demo=False, channels=[ChannelConfig(name="file", provider="fake", models=["m"])])


def channel(name: str, **fields: object) -> dict[str, object]:
    return {"name": name, "provider": "fake", "models": ["m"], **fields}


@dataclass
class Process:
    store: ChannelStore
    catalogs: CatalogService
    prices: PriceBook
    watcher: VersionWatcher


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'imagegate.db'}"
    migrate.upgrade(url)
    return url


@pytest.fixture
async def start_process(database_url: str) -> AsyncIterator[Callable[..., object]]:
    started: list[tuple[Process, object]] = []

    async def start(*, redis_url: str = "", poll_s: float = 0.2) -> Process:
        engine = create_engine(database_url)
        versions = ConfigVersions(engine, redis_url)
        store = ChannelStore(engine, versions)
        catalogs = CatalogService(SETTINGS, store, ProviderPool(http=None))  # type: ignore[arg-type]
        catalog = await catalogs.start()
        prices = PriceBook({}, engine, versions=versions)
        await prices.load()
        watcher = VersionWatcher(versions, poll_s=poll_s)
        watcher.subscribe(ChannelStore.VERSION, catalogs.on_version, seen=catalog.version)
        watcher.subscribe(PRICES_VERSION, prices.on_version)
        await watcher.start()
        process = Process(store, catalogs, prices, watcher)
        started.append((process, engine))
        return process

    yield start  # type: ignore[misc]
    for process, engine in started:
        await process.watcher.aclose()
        await process.catalogs.aclose()
        await process.store.versions.aclose()
        await engine.dispose()  # type: ignore[attr-defined]


async def eventually(check: Callable[[], bool], within_s: float = 5.0) -> float:
    """Seconds until ``check()`` held; fails after ``within_s``."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < within_s, "not within the time allowed"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


def names(process: Process) -> list[str]:
    return [c.name for c in process.catalogs.current.channels]


async def test_a_write_on_one_process_reaches_the_other_within_seconds(start_process: object) -> None:
    one: Process = await start_process()  # type: ignore[operator]
    two: Process = await start_process()  # type: ignore[operator]
    assert names(one) == names(two) == ["file"]
    file_provider = two.catalogs.current.channels[0].provider

    await one.store.create(channel("db"))
    await one.catalogs.reload()
    assert names(one) == ["file", "db"]
    await eventually(lambda: names(two) == ["file", "db"])
    db_provider = two.catalogs.current.channel("db")
    assert db_provider is not None and two.catalogs.current.channels[0].provider is file_provider

    await one.store.replace("db", channel("db", enabled=False))
    await eventually(lambda: names(two) == ["file"])
    assert isinstance(db_provider.provider, FakeProvider) and db_provider.provider.closed
    assert two.catalogs.current.channels[0].provider is file_provider  # untouched throughout
    assert two.catalogs.current.version == await two.store.versions.get("channels") == 2


async def test_a_bad_stored_channel_keeps_the_last_good_catalog(start_process: object) -> None:
    one: Process = await start_process()  # type: ignore[operator]
    before = one.catalogs.current
    await one.store.create(channel("db", provider="no-such-provider"))
    with pytest.raises(ValueError, match="unknown provider"):
        await one.catalogs.reload()
    assert one.catalogs.current is before


async def test_a_price_set_on_one_process_applies_on_the_other_within_seconds(start_process: object) -> None:
    one: Process = await start_process()  # type: ignore[operator]
    two: Process = await start_process()  # type: ignore[operator]
    assert two.prices.price("m") is None
    await one.prices.set_price("m", {"per_image": {"default": "0.5"}})
    took = await eventually(lambda: two.prices.price("m") is not None)
    assert took < 5
    await one.prices.delete_price("m")
    await eventually(lambda: two.prices.price("m") is None)


async def test_with_redis_a_change_arrives_without_waiting_for_a_poll(
    start_process: object, redis_url: str
) -> None:
    # Polling once a minute: only the Redis announcement can bring the change in time.
    one: Process = await start_process(redis_url=redis_url, poll_s=60)  # type: ignore[operator]
    two: Process = await start_process(redis_url=redis_url, poll_s=60)  # type: ignore[operator]
    await asyncio.sleep(0.3)  # the subscriptions are up
    await one.store.create(channel("db"))
    took = await eventually(lambda: names(two) == ["file", "db"], within_s=3)
    assert took < 3
    await one.prices.set_price("m", {"per_image": {"default": "0.5"}})
    await eventually(lambda: two.prices.price("m") is not None, within_s=3)
