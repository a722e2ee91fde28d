"""Pure ASGI middleware recording the request-level metrics of `imagegate.metrics`.

Raw ASGI (not ``BaseHTTPMiddleware``) so streamed responses pass through unbuffered, and the
time to first byte is the time to the first body bytes actually sent.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imagegate import metrics, tracing
from imagegate.api.deps import RECORD_SCOPE_KEY
from imagegate.observability import RequestRecord

# Endpoint labels: a fixed table of path prefixes, so a client's path never becomes a label.
_ENDPOINTS: tuple[tuple[str, str], ...] = (
    ("/v1/images/generations/async", "images.generations.async"),
    ("/v1/images/edits/async", "images.edits.async"),
    ("/v1/images/generations", "images.generations"),
    ("/v1/images/edits", "images.edits"),
    ("/v1/images/tasks", "images.tasks"),
    ("/v1/chat/completions", "chat.completions"),
    ("/v1/models", "models"),
    ("/files/", "files"),
    ("/admin", "admin"),
    ("/console", "console"),
    ("/metrics", "metrics"),
    ("/healthz", "health"),
    ("/readyz", "health"),
)


@functools.lru_cache(maxsize=1024)  # bounded: paths are the client's to choose
def endpoint_label(path: str) -> str:
    for prefix, label in _ENDPOINTS:
        if path.startswith(prefix):
            return label
    return "other"


class MetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._catalog: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self._sync_names(scope)
        endpoint = endpoint_label(scope["path"])
        first_byte_timer, duration_timer = metrics.endpoint_timers(endpoint)
        started = time.perf_counter()
        status = 500  # an exception before the response started is answered as one
        first_byte = False

        async def send_and_measure(message: Message) -> None:
            nonlocal status, first_byte
            if message["type"] == "http.response.start":
                status = message["status"]
            elif (
                message["type"] == "http.response.body"
                and not first_byte
                and (message.get("body") or not message.get("more_body", False))
            ):
                first_byte = True
                first_byte_timer.observe(time.perf_counter() - started)
            await send(message)

        metrics.in_flight_requests.inc()
        try:
            with tracing.span(endpoint, **{"http.method": scope["method"]}):
                await self.app(scope, receive, send_and_measure)
        finally:
            metrics.in_flight_requests.dec()
            duration_timer.observe(time.perf_counter() - started)
            # The request's record (opened by the request-context middleware, filled in by the
            # pipeline) knows its model, attempts, images and cost.
            record = scope.get(RECORD_SCOPE_KEY)
            model = record.model if isinstance(record, RequestRecord) else None
            metrics.request_counter(endpoint, metrics.model_label(model), str(status)).inc()
            if isinstance(record, RequestRecord):
                metrics.observe_record(record)

    def _sync_names(self, scope: Scope) -> None:
        # The catalog is swapped when channels change (admin API); names follow it.
        gateway = getattr(scope["app"].state, "gateway", None)
        catalog = getattr(gateway, "catalog", None)
        if catalog is not None and catalog is not self._catalog:
            self._catalog = catalog
            metrics.set_known_names(catalog.models, (channel.name for channel in catalog.channels))
