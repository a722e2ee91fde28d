"""The live catalog: the current snapshot of models and channels, reloaded when channels change.

:class:`CatalogService` holds the current :class:`~imagegate.providers.registry.Catalog` and
swaps it whole: the config file's channels plus the database's, built by a provider pool that
reuses every unchanged provider. It reloads when the ``channels`` config version in the database
moves (`imagegate.db.versions.VersionWatcher`: Redis pub/sub when configured, else polling), so
a channel written through the admin API on any process or replica serves everywhere within
about a second.

    catalogs = CatalogService(settings, ChannelStore(engine, versions), ProviderPool(http))
    await catalogs.start()                     # raises ValueError on a bad channel (start-up)
    watcher.subscribe("channels", catalogs.on_version, seen=catalogs.current.version)
    spec = catalogs.current.image_model("gpt-image-1")
    await catalogs.reload()                     # after a write, on the writing process
    await catalogs.aclose()
"""

from __future__ import annotations

import asyncio
import logging

from imagegate.db.channels import ChannelStore
from imagegate.providers.pool import ProviderPool
from imagegate.providers.registry import Catalog, check_catalog
from imagegate.settings import ChannelConfig, Settings

logger = logging.getLogger("imagegate.catalog")


class CatalogService:
    def __init__(self, settings: Settings, store: ChannelStore, pool: ProviderPool) -> None:
        self.settings = settings
        self.store = store
        self.pool = pool
        self._current: Catalog | None = None
        self._lock = asyncio.Lock()

    @property
    def current(self) -> Catalog:
        if self._current is None:
            raise RuntimeError("the catalog service has not started")
        return self._current

    async def start(self) -> Catalog:
        return await self.reload()

    async def reload(self) -> Catalog:
        """Build a snapshot from the settings and the stored channels now, and swap it in.

        Raises ValueError (keeping the current snapshot) when the channels make no valid catalog.
        """
        async with self._lock:
            # The version is read before the rows: a write landing in between bumps it again,
            # and the watcher reloads once more.
            version = await self.store.versions.get(ChannelStore.VERSION)
            stored = await self.store.configs()
            catalog = await self.pool.catalog(self.settings, stored, version=version)
            self._current = catalog
        logger.info("catalog version %d: %d channels", version, len(catalog.channels))
        return catalog

    async def on_version(self, version: int) -> None:
        """The ``channels`` version moved: reload unless this snapshot is already that new."""
        if self._current is not None and self._current.version >= version:
            return
        await self.reload()

    def check(self, stored: list[ChannelConfig]) -> None:
        """Raise ValueError when these stored channels would not make a valid catalog."""
        check_catalog(self.settings, stored)

    async def aclose(self) -> None:
        await self.pool.aclose()
