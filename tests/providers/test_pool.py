"""The provider pool: unchanged channels keep their provider instance across catalog builds;
changed, disabled and removed ones get theirs closed; slow providers are built off the event
loop, once."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, ClassVar

import pytest

from imagegate.http import HttpClients
from imagegate.providers.pool import ProviderPool
from imagegate.providers.registry import Catalog
from imagegate.settings import ChannelConfig, Settings
from tests.fakes.provider import FakeProvider


class SlowProvider(FakeProvider):
    """Blocks in its constructor like a local model loading weights."""

    name = "fake-slow"
    built: ClassVar[list[int]] = []  # the thread each instance was built on

    def __init__(self, channel: ChannelConfig | None = None, http: HttpClients | None = None) -> None:
        threading.Event().wait(0.2)
        SlowProvider.built.append(threading.get_ident())
        super().__init__(channel, http)


class BrokenProvider(FakeProvider):
    name = "fake-broken"

    async def start(self) -> None:
        raise ValueError("the weights are missing")


def settings(*channels: ChannelConfig) -> Settings:
    return Settings(demo=False, channels=list(channels))


def fake(name: str, **fields: Any) -> ChannelConfig:
    return ChannelConfig(name=name, provider=fields.pop("provider", "fake"), models=["m"], **fields)


def providers(catalog: Catalog) -> dict[str, FakeProvider]:
    found = {channel.name: channel.provider for channel in catalog.channels}
    assert all(isinstance(p, FakeProvider) for p in found.values())
    return found  # type: ignore[return-value]


@pytest.fixture
def pool() -> ProviderPool:
    return ProviderPool(http=None)  # type: ignore[arg-type]  # fake providers make no HTTP calls


async def test_unchanged_channels_keep_their_instance(pool: ProviderPool) -> None:
    first = providers(await pool.catalog(settings(fake("a")), [fake("b")]))
    second = providers(await pool.catalog(settings(fake("a")), [fake("b"), fake("c")]))
    assert second["a"] is first["a"] and second["b"] is first["b"]
    assert not first["a"].closed and first["a"].started == 1


async def test_routing_fields_change_without_a_new_provider(pool: ProviderPool) -> None:
    before = providers(await pool.catalog(settings(), [fake("a")]))["a"]
    changed = fake("a", weight=5, priority=2, max_concurrency=3, model_map={"m": "m2"})
    catalog = await pool.catalog(settings(), [changed.model_copy(update={"models": ["m", "n"]})])
    assert providers(catalog)["a"] is before and not before.closed
    assert catalog.channels_for("n")[0].config.weight == 5  # the snapshot carries the new routing


@pytest.mark.parametrize(
    "change", [{"api_key": "new"}, {"base_url": "http://elsewhere"}, {"options": {"x": 1}}, {"timeout_s": 9}]
)
async def test_a_provider_field_change_builds_a_new_one_and_closes_the_old(
    pool: ProviderPool, change: dict[str, Any]
) -> None:
    old = providers(await pool.catalog(settings(), [fake("a"), fake("b")]))
    new = providers(await pool.catalog(settings(), [fake("a", **change), fake("b")]))
    assert new["a"] is not old["a"] and old["a"].closed and not new["a"].closed
    assert new["b"] is old["b"] and not old["b"].closed


async def test_removed_and_disabled_channels_are_closed(pool: ProviderPool) -> None:
    old = providers(await pool.catalog(settings(), [fake("a"), fake("b"), fake("c")]))
    catalog = await pool.catalog(settings(), [fake("a"), fake("c", enabled=False)])
    assert old["b"].closed and old["c"].closed and not old["a"].closed
    assert [channel.name for channel in catalog.channels] == ["a"]
    assert catalog.models["m"]  # a disabled channel's model stays known (503, not 404)
    enabled_again = providers(await pool.catalog(settings(), [fake("a"), fake("c")]))
    assert enabled_again["c"] is not old["c"] and not enabled_again["c"].closed


async def test_a_failing_build_changes_nothing(pool: ProviderPool) -> None:
    old = providers(await pool.catalog(settings(), [fake("a")]))
    with pytest.raises(ValueError, match="weights are missing"):
        await pool.catalog(settings(), [fake("a", api_key="x"), fake("b"), fake("z", provider="fake-broken")])
    kept = providers(await pool.catalog(settings(), [fake("a")]))
    assert kept["a"] is old["a"] and not old["a"].closed
    with pytest.raises(ValueError, match="unknown provider 'nope'"):
        await pool.catalog(settings(), [fake("a"), fake("n", provider="nope")])
    assert providers(await pool.catalog(settings(), [fake("a")]))["a"] is old["a"]


async def test_a_slow_provider_is_built_off_the_loop_and_once(pool: ProviderPool) -> None:
    SlowProvider.built.clear()
    channels = [fake("slow", provider="fake-slow")]
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    catalogs = await asyncio.gather(*(pool.catalog(settings(), channels) for _ in range(3)))
    ticker.cancel()
    assert len(SlowProvider.built) == 1  # three reloads at once, one load
    assert SlowProvider.built[0] != threading.get_ident()
    assert ticks >= 10  # the loop kept running while it loaded
    assert len({id(c.channels[0].provider) for c in catalogs}) == 1


async def test_closing_the_pool_closes_every_provider(pool: ProviderPool) -> None:
    live = providers(await pool.catalog(settings(fake("a")), [fake("b")]))
    await pool.aclose()
    assert all(provider.closed for provider in live.values())
    with pytest.raises(RuntimeError):
        await pool.catalog(settings(), [])
