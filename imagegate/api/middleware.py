"""Pure ASGI middleware: request id, client IP, body-size limit, the per-request log line and row.

The client IP is resolved once here (`imagegate.api.client_ip`: forwarded headers believed only
from trusted proxies) and written back into ``scope["client"]``, so everything after this,
``request.client`` included, sees the same address.

Each finished API request's record goes to the gateway's batched request-log writer
(`imagegate.db.request_logs`), which only queues it here.

Written against raw ASGI rather than ``BaseHTTPMiddleware`` because it runs on every request and
must not buffer streaming responses.
"""

from __future__ import annotations

import asyncio
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imagegate.api.client_ip import ClientIpResolver
from imagegate.api.deps import RECORD_SCOPE_KEY
from imagegate.api.errors import error_response
from imagegate.domain import new_request_id
from imagegate.errors import PayloadTooLarge
from imagegate.observability import RequestRecord, access_logger

# Only API calls go to the request log: health probes, hosted files and the admin API itself
# would drown the rows that cost money.
_LOGGED_PREFIX = "/v1/"


def _submit(scope: Scope, record: RequestRecord, started_at: float) -> None:
    gateway = getattr(scope["app"].state, "gateway", None)
    if gateway is not None:
        gateway.request_log.submit(record, started_at)


class RequestContextMiddleware:
    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, client_ip: ClientIpResolver | None = None
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.client_ip = client_ip or ClientIpResolver(())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started_at = time.time()
        started = time.perf_counter()
        record = RequestRecord(request_id=new_request_id(), method=scope["method"], endpoint=scope["path"])
        client = scope.get("client")
        if client:
            record.client_ip = self.client_ip.client_ip(client[0], scope["headers"])
            if record.client_ip != client[0]:
                scope["client"] = (record.client_ip, 0) if record.client_ip is not None else None
        scope[RECORD_SCOPE_KEY] = record
        request_id_header = (b"x-request-id", record.request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
                headers = list(message.get("headers", ()))
                # The console's pass-through answers with the inner /v1 request's id: keep that one.
                if not any(name == b"x-request-id" for name, _ in headers):
                    headers.append(request_id_header)
                message["headers"] = headers
            elif record.ttfb_ms is None and message.get("body"):
                record.ttfb_ms = round((time.perf_counter() - started) * 1000, 1)
            await send(message)

        try:
            if self._declared_length(scope) > self.max_body_bytes:
                await self._too_large(scope, receive, send_with_id, record)
                return
            await self.app(scope, self._limited(receive), send_with_id)
        except BaseException as exc:
            # Nothing inside answered (or the client left: nginx's 499), so the server answers 500
            # after this; the log must say so already, as the row is queued below.
            if not record.status:
                record.status = 499 if isinstance(exc, asyncio.CancelledError) else 500
            if record.error_type is None:
                record.error_type, record.error_code = "server_error", type(exc).__name__
            raise
        finally:
            record.latency_ms = round((time.perf_counter() - started) * 1000, 1)
            access_logger.info(record.log_line())
            if record.endpoint.startswith(_LOGGED_PREFIX):
                _submit(scope, record, started_at)

    def _limited(self, receive: Receive) -> Receive:
        """Counts body bytes as they arrive, for bodies sent without a Content-Length."""
        received = 0
        limit = self.max_body_bytes

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(self._message())
            return message

        return limited_receive

    @staticmethod
    def _declared_length(scope: Scope) -> int:
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return 0
        return 0

    def _message(self) -> str:
        return f"The request body is larger than the limit of {self.max_body_bytes / 1024 / 1024:g} MB."

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, record: RequestRecord) -> None:
        response = error_response(PayloadTooLarge(self._message()), record)
        await response(scope, receive, send)
