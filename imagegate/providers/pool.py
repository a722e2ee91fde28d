"""The provider instances behind the catalog, kept across catalog changes.

A channel change (through the admin API, on this process or another) builds a new catalog
snapshot; :class:`ProviderPool` hands it the providers of every channel whose provider-relevant
config did not change (the same instance, so a local model is never loaded twice and an
upstream's state survives), builds the new ones off the event loop, and closes the providers of
channels that are gone, disabled or changed (at once, after the swap: a replaced local model's
memory is freed; remote providers hold nothing to close). Routing fields (models,
model_map, priority, weight, max_concurrency) are read from the snapshot's config on each
request, so changing them keeps the provider.

    pool = ProviderPool(http)
    catalog = await pool.catalog(settings, stored_channels, version=7)
    ...
    await pool.aclose()
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from imagegate.providers.base import Provider
from imagegate.providers.registry import Catalog, channel_configs, check_channel
from imagegate.settings import ChannelConfig, Settings

if TYPE_CHECKING:
    from imagegate.http import HttpClients

logger = logging.getLogger("imagegate.providers")

# What a provider instance is built from; the rest of a channel's config is routing, read from
# the snapshot on each request.
_PROVIDER_FIELDS = {"name", "provider", "base_url", "api_key", "timeout_s", "options"}


def provider_key(config: ChannelConfig) -> dict[str, Any]:
    """The part of a channel's config its provider instance depends on."""
    return config.model_dump(include=_PROVIDER_FIELDS)


class ProviderPool:
    def __init__(self, http: HttpClients) -> None:
        self.http = http
        self._live: dict[str, tuple[dict[str, Any], Provider]] = {}
        # One build at a time: two reloads racing must not load the same local model twice.
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def providers(self) -> dict[str, Provider]:
        """The live provider of each enabled channel, by channel name."""
        return {name: provider for name, (_, provider) in self._live.items()}

    async def catalog(
        self, settings: Settings, stored: Sequence[ChannelConfig] = (), *, version: int = 0
    ) -> Catalog:
        """A snapshot of ``settings`` plus ``stored`` channels, reusing every unchanged provider.

        Raises ValueError (and changes nothing) when the channels do not make a valid catalog.
        """
        async with self._lock:
            if self._closed:
                raise RuntimeError("the provider pool is closed")
            configs = channel_configs(settings, stored)
            for config in configs:
                check_channel(config)  # every check before anything is built
            kept: dict[str, tuple[dict[str, Any], Provider]] = {}
            built: list[Provider] = []
            try:
                for config in configs:
                    if not config.enabled:
                        continue
                    key = provider_key(config)
                    live = self._live.get(config.name)
                    if live is not None and live[0] == key:
                        kept[config.name] = live
                        continue
                    provider = await self._build(config)
                    built.append(provider)
                    kept[config.name] = (key, provider)
                providers = {name: provider for name, (_, provider) in kept.items()}
                catalog = Catalog(settings, stored=stored, providers=providers, version=version)
            except BaseException:
                await _close_all(built)
                raise
            in_use = {id(provider) for _, provider in kept.values()}
            dropped = [provider for _, provider in self._live.values() if id(provider) not in in_use]
            self._live = kept
        # Requests already running on a dropped provider were routed before the change; remote
        # providers hold nothing to close, and a local model refuses new work once closed.
        await _close_all(dropped)
        return catalog

    async def _build(self, config: ChannelConfig) -> Provider:
        cls = check_channel(config)
        # Constructors may block (a local model loads its weights): never on the event loop.
        provider = await asyncio.to_thread(cls, config, self.http)
        try:
            await provider.start()
        except BaseException:
            await provider.aclose()
            raise
        logger.info("channel %s: %s provider ready", config.name, cls.name)
        return provider

    async def aclose(self) -> None:
        async with self._lock:
            self._closed = True
            live, self._live = self._live, {}
        await _close_all([provider for _, provider in live.values()])


async def _close_all(providers: list[Provider]) -> None:
    for provider in providers:
        try:
            await provider.aclose()
        except Exception:
            logger.exception("closing the %s provider failed", provider.name)
