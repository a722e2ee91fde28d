"""Graceful shutdown around the app, whichever server runs it.

On SIGTERM the server stops accepting and lets requests in flight run on; uvicorn cancels the
ones still running when its grace (the same ``shutdown_grace_s``) ends. Then it tells the app to
shut down, and the app closes the request log and the database. A cancelled request is still
unwinding at that moment: releasing its quota hold and queueing its log row need the very
things being closed. So before the app hears ``lifespan.shutdown``, this wrapper

1. waits for requests still running, up to the grace (a server without its own grace);
2. cancels the rest, logging each one;
3. waits (briefly) until every cancelled request has unwound,

and only then passes the shutdown on, so their rows reach the request log before it is flushed.
"""

from __future__ import annotations

import asyncio
import time

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imagegate.errors import GatewayError
from imagegate.server.limits import logger

#: How long cancelled requests get to release their holds and queue their log rows.
UNWIND_S = 10.0


class DrainingApp:
    def __init__(self, app: ASGIApp, grace_s: float) -> None:
        self.app = app
        self.grace_s = grace_s
        self.in_flight: dict[asyncio.Task[None], str] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, self._drain_before_shutdown(receive), send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - ASGI servers always run requests in tasks
            await self.app(scope, receive, send)
            return
        self.in_flight[task] = f"{scope['method']} {scope['path']}"  # type: ignore[assignment]
        started = time.monotonic()
        answered = False

        async def tracked_send(message: Message) -> None:
            nonlocal answered
            answered = answered or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        except asyncio.CancelledError:
            # Servers cancel a request only when they stop (a client that leaves is told with
            # http.disconnect instead), so this is a request the shutdown cut short. The app
            # has unwound (hold released, log row queued); the client is told why, and the
            # task ends normally so the server does not report it as a crash.
            what = self.in_flight.get(task, "a request")  # type: ignore[call-overload]
            logger.warning("shutdown: %s cancelled after %.1fs", what, time.monotonic() - started)
            task.uncancel()
            if not answered:
                await _shutting_down(send)
        finally:
            self.in_flight.pop(task, None)  # type: ignore[arg-type]

    def _drain_before_shutdown(self, receive: Receive) -> Receive:
        async def receive_then_drain() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                await self.drain()
            return message

        return receive_then_drain

    async def drain(self) -> None:
        if self.in_flight:
            await asyncio.wait(list(self.in_flight), timeout=self.grace_s)
        running = dict(self.in_flight)
        for task in running:
            task.cancel("server shutdown: grace period over")
        if running:
            _, stuck = await asyncio.wait(running, timeout=UNWIND_S)
            for task in stuck:
                logger.error("shutdown: %s did not unwind in %gs", running[task], UNWIND_S)


async def _shutting_down(send: Send) -> None:
    body = orjson.dumps(
        GatewayError(
            "The server shut down before this request finished; retry it.",
            code="server_shutting_down",
            status=503,
        ).to_body()
    )
    headers = [(b"content-type", b"application/json"), (b"connection", b"close"), (b"retry-after", b"1")]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})
