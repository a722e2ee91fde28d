"""The app factory: ``create_app(settings)`` mounts the routes and runs the gateway in a lifespan.

Nothing is built at import time: the lifespan starts the :class:`~imagegate.services.gateway.Gateway`
(database engine, HTTP client pool, catalog, image store, pipeline) and stops it on shutdown.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.datastructures import State
from starlette.types import ASGIApp

from imagegate import __version__, tracing
from imagegate.api import chat, files, health, images, metrics, models, openapi_v1, tasks
from imagegate.api.admin import include_admin_api
from imagegate.api.client_ip import ClientIpResolver
from imagegate.api.errors import install_error_handlers
from imagegate.api.hot_routes import HotRoutes
from imagegate.api.metrics_middleware import MetricsMiddleware
from imagegate.api.middleware import RequestContextMiddleware
from imagegate.console import mount_console
from imagegate.log_output import LoopBatchedStreamHandler, SecondCachingFormatter
from imagegate.services.gateway import Gateway
from imagegate.settings import Settings, load_settings


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gateway = await Gateway.start(settings)
        app.state.gateway = gateway
        await tasks.start_tasks(gateway)
        tune_garbage_collector()
        try:
            yield
        finally:
            await gateway.stop()

    configure_logging(settings)
    tracing.setup()  # OpenTelemetry, only with the `otel` extra and OTEL_EXPORTER_OTLP_ENDPOINT
    app = GatewayApp(
        settings,
        title="imagegate",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        # FastAPI's own OpenTelemetry (0.165+) looks up three global providers on every request
        # (3 % of a task submit's CPU) and, with imagegate's tracing on, would add a second
        # server span: imagegate has its spans (imagegate.tracing) and /metrics already.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_error_handlers(app)
    for module in (images, chat, models, files, health, metrics):
        app.include_router(module.router)
    app.include_router(tasks.router)
    app.include_router(tasks.admin)
    include_admin_api(app)
    app.include_router(openapi_v1.router)  # GET /v1/openapi.json
    mount_console(app)  # the web console at /console (and / redirects there)
    return app


class GatewayApp(FastAPI):
    """FastAPI with the request edge in front of its whole stack.

    Every request passes the metrics and the request-context middleware (request id, client IP,
    body limit, log line); then the hot API endpoints are dispatched directly
    (`imagegate.api.hot_routes`) and everything else goes through FastAPI as usual.
    """

    def __init__(self, settings: Settings, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.settings = settings
        self.state = AppState()

    def build_middleware_stack(self) -> ASGIApp:
        hot = HotRoutes(
            super().build_middleware_stack(),
            {("POST", path): endpoint for path, endpoint in (images.POST_ROUTES | chat.POST_ROUTES).items()},
        )
        context = RequestContextMiddleware(
            hot,
            max_body_bytes=int(self.settings.max_body_mb * 1024 * 1024),
            client_ip=ClientIpResolver(self.settings.trusted_proxies, self.settings.forwarded_header),
        )
        return MetricsMiddleware(context)  # outermost: its timings include the request-context work


class AppState(State):
    """Starlette's app state, with every value also an ordinary attribute of the instance.

    State keeps its values in a dict behind ``__getattr__``, which Python calls only after the
    ordinary lookup has failed, raising and formatting an AttributeError that is thrown away.
    The running gateway is read from here several times per request, so each value is also set
    where that first lookup finds it.
    """

    def __setattr__(self, key: Any, value: Any) -> None:
        super().__setattr__(key, value)
        object.__setattr__(self, key, value)

    def __delattr__(self, key: Any) -> None:
        super().__delattr__(key)
        object.__delattr__(self, key)

    __setitem__ = __setattr__
    __delitem__ = __delattr__


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
    # Every API request writes a log line: skip what each LogRecord would gather that no format
    # here prints (caller, thread and process: the logging HOWTO's "Optimization" switches).
    # It took a third off the cost of a log call.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # type: ignore[attr-defined]
    root = logging.getLogger("imagegate")
    root.setLevel(settings.log_level.upper())
    if not root.handlers:
        handler = LoopBatchedStreamHandler()
        handler.setFormatter(SecondCachingFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        root.addHandler(handler)
        root.propagate = False
