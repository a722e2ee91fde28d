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
from dataclasses import dataclass, field

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate import __version__
from imagegate.api import admin_channels, chat, files, health, images, models
from imagegate.api.admin import include_admin_api
from imagegate.api.auth import Authenticator
from imagegate.api.errors import install_error_handlers
from imagegate.api.middleware import RequestContextMiddleware
from imagegate.billing.ledger import Ledger
from imagegate.billing.meter import Billing
from imagegate.billing.prices import PriceBook
from imagegate.console import mount_console
from imagegate.db import migrate
from imagegate.db.channels import ChannelStore
from imagegate.db.engine import create_engine
from imagegate.db.groups import GroupStore
from imagegate.db.keys import KeyStore
from imagegate.db.request_logs import RequestLogWriter
from imagegate.http import HttpClients
from imagegate.limits import RateLimiter, create_limiter
from imagegate.providers.registry import Catalog
from imagegate.services.chat import ChatImageService
from imagegate.services.images import ImageService
from imagegate.services.inputs import InputLoader
from imagegate.services.routing import ChannelRouter
from imagegate.settings import ChannelConfig, Settings, load_settings
from imagegate.storage.disk import DiskStore


@dataclass
class Gateway:
    """Everything a request may need, built once per process."""

    settings: Settings
    engine: AsyncEngine
    http: HttpClients
    catalog: Catalog
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
    #: Catalogs replaced by `reload_catalog`; requests in flight may still use their providers.
    retired_catalogs: list[Catalog] = field(default_factory=list)

    @classmethod
    async def start(cls, settings: Settings) -> Gateway:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # Alembic drives its own event loop, so it runs in a worker thread.
        await asyncio.to_thread(migrate.upgrade, settings.resolved_database_url)
        engine = create_engine(settings.resolved_database_url)
        http = HttpClients.create(settings)
        channels = ChannelStore(engine)
        catalog = Catalog(with_stored_channels(settings, await channels.configs()), http)
        store = DiskStore(settings.images_dir)
        keys = KeyStore(engine)
        prices = PriceBook({name: model.price for name, model in settings.models.items()}, engine)
        await prices.load()
        ledger = Ledger(engine)
        billing = Billing(prices, ledger)
        limiter = create_limiter(settings)
        images = ImageService(settings, catalog, store, http, billing)
        routing = images.router = ChannelRouter.from_settings(catalog, settings)
        inputs = InputLoader(settings, http.fetcher, store)
        request_log = RequestLogWriter(engine, retention_days=settings.log_retention_days)
        await request_log.start()
        return cls(
            settings=settings,
            engine=engine,
            http=http,
            catalog=catalog,
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
        )

    async def reload_catalog(self) -> Catalog:
        """Rebuild the catalog from the settings plus the stored channels and swap it in.

        Raises ValueError (and changes nothing) when the combined channels do not make a valid
        catalog. Channel health is kept by name, so a channel that did not change keeps its state.
        """
        stored = await self.channels.configs()
        catalog = Catalog(with_stored_channels(self.settings, stored), self.http)
        self.retired_catalogs.append(self.catalog)
        self.catalog = self.images.catalog = self.routing.catalog = catalog
        return catalog

    async def stop(self) -> None:
        # Queued request-log rows first: they need the engine, and must survive a clean shutdown.
        await self.request_log.stop()
        await self.billing.drain()
        await self.limiter.aclose()
        for retired in self.retired_catalogs:
            await retired.aclose()
        await self.catalog.aclose()
        await self.http.aclose()
        await self.engine.dispose()


def with_stored_channels(settings: Settings, stored: list[ChannelConfig]) -> Settings:
    """The settings with the database's channels after the config file's."""
    if not stored:
        return settings
    return settings.model_copy(update={"channels": [*settings.channels, *stored]})


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
    app.include_router(admin_channels.router)
    include_admin_api(app)
    mount_console(app)  # the web console at /console (and / redirects there)
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
