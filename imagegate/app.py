"""The app factory: ``create_app(settings)`` wires the long-lived parts in a lifespan.

Nothing is built at import time: the lifespan owns the database engine, the HTTP client pool,
the provider registry (catalog) and the image store, and closes them on shutdown.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate import __version__
from imagegate.api import chat, files, health, images, models
from imagegate.api.admin import include_admin_api
from imagegate.api.auth import Authenticator
from imagegate.api.errors import install_error_handlers
from imagegate.api.middleware import RequestContextMiddleware
from imagegate.billing.ledger import Ledger
from imagegate.billing.meter import Billing
from imagegate.billing.prices import PRICES_VERSION, PriceBook
from imagegate.db import migrate
from imagegate.db.channels import ChannelStore
from imagegate.db.engine import create_engine
from imagegate.db.groups import GroupStore
from imagegate.db.keys import KeyStore
from imagegate.db.request_logs import RequestLogWriter
from imagegate.db.versions import ConfigVersions, VersionWatcher
from imagegate.http import HttpClients
from imagegate.limits import RateLimiter, create_limiter
from imagegate.providers.pool import ProviderPool
from imagegate.providers.registry import Catalog
from imagegate.services.catalog import CatalogService
from imagegate.services.chat import ChatImageService
from imagegate.services.images import ImageService
from imagegate.services.inputs import InputLoader
from imagegate.services.routing import ChannelRouter
from imagegate.settings import Settings, load_settings
from imagegate.storage.disk import DiskStore


@dataclass
class Gateway:
    """Everything a request may need, built once per process."""

    settings: Settings
    engine: AsyncEngine
    http: HttpClients
    store: DiskStore
    keys: KeyStore
    auth: Authenticator
    images: ImageService
    inputs: InputLoader
    chat: ChatImageService
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
    # -- live catalog (providers/catalog engineer; to move with the pipeline's wiring) --------
    #: The current models and channels, reloaded when the channels config version moves.
    catalogs: CatalogService
    #: Watches the config versions (channels, prices) of every process sharing the database.
    watcher: VersionWatcher
    versions: ConfigVersions

    @property
    def catalog(self) -> Catalog:
        """The current snapshot (read it once per request)."""
        return self.catalogs.current

    @classmethod
    async def start(cls, settings: Settings) -> Gateway:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # Alembic drives its own event loop, so it runs in a worker thread.
        await asyncio.to_thread(migrate.upgrade, settings.resolved_database_url)
        engine = create_engine(settings.resolved_database_url)
        http = HttpClients.create(settings)
        # -- live catalog and config versions (providers/catalog engineer) --------------------
        versions = ConfigVersions(engine, settings.redis_url)
        channels = ChannelStore(engine, versions)
        catalogs = CatalogService(settings, channels, ProviderPool(http))
        catalog = await catalogs.start()
        watcher = VersionWatcher(versions)
        watcher.subscribe(ChannelStore.VERSION, catalogs.on_version, seen=catalog.version)
        # -------------------------------------------------------------------------------------
        store = DiskStore(settings.images_dir)
        keys = KeyStore(engine)
        price_table = {name: model.price for name, model in settings.models.items()}
        prices = PriceBook(price_table, engine, versions=versions)
        await prices.load()
        watcher.subscribe(PRICES_VERSION, prices.on_version)  # price writes on any process
        prices.watched = True
        await watcher.start()
        ledger = Ledger(engine)
        billing = Billing(prices, ledger)
        limiter = create_limiter(settings)
        images = ImageService(settings, catalog, store, http, billing)
        catalogs.on_swap(lambda snapshot: setattr(images, "catalog", snapshot))  # live catalog
        routing = images.router = ChannelRouter.from_settings(catalogs, settings)  # live catalog
        inputs = InputLoader(settings, http.fetcher, store)
        request_log = RequestLogWriter(engine, retention_days=settings.log_retention_days)
        await request_log.start()
        return cls(
            settings=settings,
            engine=engine,
            http=http,
            store=store,
            keys=keys,
            auth=Authenticator(keys, settings.admin_key, settings.key_cache_ttl_s, limiter),
            images=images,
            inputs=inputs,
            chat=ChatImageService(images, inputs),
            started_at=int(time.time()),
            routing=routing,
            channels=channels,
            request_log=request_log,
            groups=GroupStore(engine),
            prices=prices,
            ledger=ledger,
            billing=billing,
            limiter=limiter,
            catalogs=catalogs,
            watcher=watcher,
            versions=versions,
        )

    async def stop(self) -> None:
        # Queued request-log rows first: they need the engine, and must survive a clean shutdown.
        await self.request_log.stop()
        await self.billing.drain()
        await self.limiter.aclose()
        await self.watcher.aclose()  # live catalog: no reload during shutdown
        await self.catalogs.aclose()
        await self.versions.aclose()
        await self.http.aclose()
        await self.engine.dispose()


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gateway = await Gateway.start(settings)
        app.state.gateway = gateway
        tune_garbage_collector()
        try:
            yield
        finally:
            await gateway.stop()

    configure_logging(settings)
    app = FastAPI(title="imagegate", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=int(settings.max_body_mb * 1024 * 1024))
    install_error_handlers(app)
    for module in (images, chat, models, files, health):
        app.include_router(module.router)
    include_admin_api(app)
    return app


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (and ``imagegate serve``): settings from env and TOML."""
    return create_app(load_settings())


_gc_tuned = False


def tune_garbage_collector() -> None:
    """Keep full collections off the request path.

    With a thousand requests in flight, each full collection walks every object of every
    request and start-up (0.1-0.25 s seen in the benchmark), stalling all of them. Freezing
    what start-up built and collecting the youngest generation less often keeps pauses short;
    reference counting still frees almost everything a request allocates.
    """
    global _gc_tuned
    if _gc_tuned:
        return
    _gc_tuned = True
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def configure_logging(settings: Settings) -> None:
    root = logging.getLogger("imagegate")
    root.setLevel(settings.log_level.upper())
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        root.addHandler(handler)
        root.propagate = False
