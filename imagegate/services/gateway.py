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
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.billing.leases import StaleHoldReaper
from imagegate.billing.ledger import Ledger
from imagegate.billing.meter import Billing
from imagegate.billing.prices import PRICES_VERSION, PriceBook
from imagegate.db import migrate
from imagegate.db.channels import ChannelStore
from imagegate.db.engine import create_engine
from imagegate.db.groups import GroupStore
from imagegate.db.keys import KeyStore
from imagegate.db.request_logs import RequestLogWriter
from imagegate.db.tasks import TaskStore
from imagegate.db.versions import ConfigVersions, VersionWatcher
from imagegate.http import HttpClients
from imagegate.limits import RateLimiter, create_limiter
from imagegate.providers.pool import ProviderPool
from imagegate.providers.registry import Catalog
from imagegate.services.auth import Authenticator
from imagegate.services.catalog import CatalogService
from imagegate.services.chat import ChatTranslator
from imagegate.services.delivery import Delivery
from imagegate.services.generation import GenerationPipeline
from imagegate.services.inputs import InputLoader
from imagegate.services.routing import ChannelRouter
from imagegate.services.tasks import TaskService
from imagegate.settings import Settings
from imagegate.storage.base import ImageStore
from imagegate.storage.factory import open_store
from imagegate.storage.retention import RetentionSweeper


@dataclass
class Gateway:
    settings: Settings
    engine: AsyncEngine
    http: HttpClients
    #: The current models and channels (live: reloaded when the channels config version moves).
    catalogs: CatalogService
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
    #: Watches the config versions (channels, prices) of every process sharing the database.
    watcher: VersionWatcher
    versions: ConfigVersions
    #: This process's hold lease, and the release of the holds of dead processes.
    reaper: StaleHoldReaper
    #: Async tasks (SPEC §10): the queue in the database, and this process's runner and webhook
    #: sender once `api.tasks.start_tasks` started them.
    tasks: TaskService
    #: Deletes images past IMAGEGATE_IMAGE_RETENTION_DAYS, one replica at a time (storage/retention).
    sweeper: RetentionSweeper

    @classmethod
    async def start(cls, settings: Settings) -> Gateway:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # Alembic drives its own event loop, so it runs in a worker thread.
        await asyncio.to_thread(migrate.upgrade, settings.resolved_database_url)
        engine = create_engine(settings.resolved_database_url)
        http = HttpClients.create(settings)
        # Live catalog and prices: every process follows the channel and price writes of all.
        versions = ConfigVersions(engine, settings.redis_url)
        channels = ChannelStore(engine, versions)
        catalogs = CatalogService(settings, channels, ProviderPool(http))
        catalog = await catalogs.start()
        prices = PriceBook(
            {name: model.price for name, model in settings.models.items()}, engine, versions=versions
        )
        await prices.load()
        watcher = VersionWatcher(versions)
        watcher.subscribe(ChannelStore.VERSION, catalogs.on_version, seen=catalog.version)
        watcher.subscribe(PRICES_VERSION, prices.on_version)
        prices.watched = True
        await watcher.start()
        store = open_store(settings)
        ledger = Ledger(engine)
        billing = Billing(prices, ledger)
        routing = ChannelRouter.from_settings(catalogs, settings)
        request_log = RequestLogWriter(engine, retention_days=settings.log_retention_days)
        await request_log.start()
        # Holds: take this process's lease, give back those of dead processes (now and on).
        reaper = StaleHoldReaper(engine, ledger.owner, lease_s=settings.hold_lease_s)
        await reaper.start()
        inputs = InputLoader(settings, http.fetcher, store)
        delivery = Delivery(store, http, settings.resolved_public_url)
        keys = KeyStore(engine)
        limiter = create_limiter(settings)
        generation = GenerationPipeline(catalogs, routing, inputs, billing, delivery)
        tasks = TaskService(
            TaskStore(engine, key_cache_ttl_s=settings.key_cache_ttl_s), generation, billing, settings
        )
        sweeper = RetentionSweeper(store, settings, engine)
        sweeper.start()
        return cls(
            settings=settings,
            engine=engine,
            http=http,
            catalogs=catalogs,
            store=store,
            keys=keys,
            auth=Authenticator(keys, settings.admin_key, settings.key_cache_ttl_s, limiter),
            generation=generation,
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
            watcher=watcher,
            versions=versions,
            reaper=reaper,
            tasks=tasks,
            sweeper=sweeper,
        )

    @property
    def catalog(self) -> Catalog:
        return self.catalogs.current

    async def stop(self) -> None:
        # Tasks first: running ones go back to the queue (holds kept) while the engine is open.
        await self.tasks.stop()
        await self.sweeper.stop()
        # Queued request-log rows first: they need the engine, and must survive a clean shutdown.
        await self.request_log.stop()
        await self.billing.drain()
        # After the drain: whatever this process still holds becomes anyone's to release.
        await self.reaper.aclose()
        await self.limiter.aclose()
        await self.watcher.aclose()  # no catalog or price reload during shutdown
        await self.catalogs.aclose()
        await self.versions.aclose()
        await self.http.aclose()
        await self.store.aclose()
        await self.engine.dispose()
