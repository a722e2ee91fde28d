"""Everything a gateway process runs on, built once at start-up and closed at shutdown.

    gateway = await Gateway.start(settings)
    ...
    await gateway.stop()

Routes do not reach through it: each takes the one service it needs (the generation pipeline,
the chat translator, the catalog, a store) through ``api.deps``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.billing.leases import StaleHoldReaper
from imagegate.billing.ledger import Ledger
from imagegate.billing.meter import Billing
from imagegate.billing.prices import PriceBook
from imagegate.db import migrate
from imagegate.db.channels import ChannelStore
from imagegate.db.engine import create_engine
from imagegate.db.groups import GroupStore
from imagegate.db.keys import KeyStore
from imagegate.db.request_logs import RequestLogWriter
from imagegate.http import HttpClients
from imagegate.limits import RateLimiter, create_limiter
from imagegate.providers.registry import Catalog
from imagegate.services.auth import Authenticator
from imagegate.services.chat import ChatTranslator
from imagegate.services.delivery import Delivery
from imagegate.services.generation import GenerationPipeline
from imagegate.services.inputs import InputLoader
from imagegate.services.routing import ChannelRouter
from imagegate.settings import ChannelConfig, Settings
from imagegate.storage.base import ImageStore
from imagegate.storage.factory import open_store
from imagegate.storage.retention import RetentionSweeper


class CatalogHolder:
    """The catalog in force; swapped whole when channels change, read per request."""

    def __init__(self, catalog: Catalog) -> None:
        self.current = catalog

    def __call__(self) -> Catalog:
        return self.current


@dataclass
class Gateway:
    settings: Settings
    engine: AsyncEngine
    http: HttpClients
    catalogs: CatalogHolder
    store: ImageStore
    keys: KeyStore
    auth: Authenticator
    generation: GenerationPipeline
    chat: ChatTranslator
    started_at: int
    #: Channel choice, failover and per-channel health (breaker, concurrency), one per process.
    routing: ChannelRouter
    #: Channels added through the admin API, served beside the config file's.
    channels: ChannelStore
    request_log: RequestLogWriter
    #: Accounts and money: token groups, prices (config + admin overrides), the quota ledger,
    #: and the per-key rate limiter (Redis-backed when IMAGEGATE_REDIS_URL is set).
    groups: GroupStore
    prices: PriceBook
    ledger: Ledger
    billing: Billing
    limiter: RateLimiter
    #: This process's hold lease, and the release of the holds of dead processes.
    reaper: StaleHoldReaper
    #: Catalogs replaced by `reload_catalog`; requests in flight may still use their providers.
    retired_catalogs: list[Catalog] = field(default_factory=list)
    #: Deletes images past IMAGEGATE_IMAGE_RETENTION_DAYS, one replica at a time (storage/retention).
    sweeper: RetentionSweeper | None = None

    @classmethod
    async def start(cls, settings: Settings) -> Gateway:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # Alembic drives its own event loop, so it runs in a worker thread.
        await asyncio.to_thread(migrate.upgrade, settings.resolved_database_url)
        engine = create_engine(settings.resolved_database_url)
        http = HttpClients.create(settings)
        channels = ChannelStore(engine)
        catalogs = CatalogHolder(Catalog(with_stored_channels(settings, await channels.configs()), http))
        store = open_store(settings)
        prices = PriceBook({name: model.price for name, model in settings.models.items()}, engine)
        await prices.load()
        ledger = Ledger(engine)
        billing = Billing(prices, ledger)
        routing = ChannelRouter.from_settings(catalogs.current, settings)
        request_log = RequestLogWriter(engine, retention_days=settings.log_retention_days)
        await request_log.start()
        # Holds: take this process's lease, give back those of dead processes (now and on).
        reaper = StaleHoldReaper(engine, ledger.owner, lease_s=settings.hold_lease_s)
        await reaper.start()
        inputs = InputLoader(settings, http.fetcher, store)
        delivery = Delivery(store, http, settings.resolved_public_url)
        keys = KeyStore(engine)
        limiter = create_limiter(settings)
        gateway = cls(
            settings=settings,
            engine=engine,
            http=http,
            catalogs=catalogs,
            store=store,
            keys=keys,
            auth=Authenticator(keys, settings.admin_key, settings.key_cache_ttl_s, limiter),
            generation=GenerationPipeline(catalogs, routing, inputs, billing, delivery),
            chat=ChatTranslator(catalogs, settings.resolved_public_url),
            started_at=int(time.time()),
            routing=routing,
            channels=channels,
            request_log=request_log,
            groups=GroupStore(engine),
            prices=prices,
            ledger=ledger,
            billing=billing,
            limiter=limiter,
            reaper=reaper,
        )
        # --- image retention (storage) ---
        gateway.sweeper = RetentionSweeper(store, settings, engine)
        gateway.sweeper.start()
        # ---
        return gateway

    async def reload_catalog(self) -> Catalog:
        """Rebuild the catalog from the settings plus the stored channels and swap it in.

        Raises ValueError (and changes nothing) when the combined channels do not make a valid
        catalog. Channel health is kept by name, so a channel that did not change keeps its state.
        """
        stored = await self.channels.configs()
        catalog = Catalog(with_stored_channels(self.settings, stored), self.http)
        self.retired_catalogs.append(self.catalogs.current)
        self.catalogs.current = self.routing.catalog = catalog
        return catalog

    @property
    def catalog(self) -> Catalog:
        return self.catalogs.current

    async def stop(self) -> None:
        # --- image retention (storage) ---
        if self.sweeper is not None:
            await self.sweeper.stop()
        # ---
        # Queued request-log rows first: they need the engine, and must survive a clean shutdown.
        await self.request_log.stop()
        await self.billing.drain()
        # After the drain: whatever this process still holds becomes anyone's to release.
        await self.reaper.aclose()
        await self.limiter.aclose()
        for retired in self.retired_catalogs:
            await retired.aclose()
        await self.catalogs.current.aclose()
        await self.http.aclose()
        await self.store.aclose()
        await self.engine.dispose()


def with_stored_channels(settings: Settings, stored: list[ChannelConfig]) -> Settings:
    """The settings with the database's channels after the config file's."""
    if not stored:
        return settings
    return settings.model_copy(update={"channels": [*settings.channels, *stored]})
