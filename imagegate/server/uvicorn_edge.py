"""uvicorn's httptools protocol with the bounds it lacks.

uvicorn times out idle keep-alive connections only after a first response. A connection that
never finishes its request head, a body that stops arriving, or tens of thousands of sockets
that never send a byte are held until the client gives up, and the last of them exhausts the
process's file descriptors. Here, per connection:

- the request head must be complete within ``header_timeout_s`` of the connection's opening
  (or of the first byte of the next request on a kept-alive one); the clock is not reset by
  more bytes, so trickling a header a byte at a time does not help;
- each piece of the body must arrive within ``body_timeout_s`` of the previous one, unless the
  server itself stopped reading (flow control while the app is busy);
- past ``max_connections`` open connections, a new one is answered 503 at once and closed.

A timed-out request is answered 408 when nothing has been answered yet, then closed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from imagegate.errors import GatewayError
from imagegate.server.limits import EdgeLimits, logger


class EdgeConfig(Config):
    """A uvicorn ``Config`` that carries the edge limits to every worker process (it is pickled)."""

    def __init__(self, app: Any, *, edge: EdgeLimits, **kwargs: Any) -> None:
        super().__init__(app, http=BoundedHttpToolsProtocol, **kwargs)
        self.edge = edge


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        edge = getattr(config, "edge", None)
        self.edge: EdgeLimits = edge if isinstance(edge, EdgeLimits) else _DEFAULT_LIMITS
        self._read_timer: asyncio.TimerHandle | None = None
        self._reading_head = False

    # -- connection cap -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.edge.max_connections:
            logger.warning("open connections over the cap of %d: answered 503", self.edge.max_connections)
            self._answer_and_close(
                503,
                "The server has too many open connections; retry shortly.",
                "server_busy",
                "server_error",
                extra=b"retry-after: 1\r\n",
            )
            return
        self._arm(self.edge.header_timeout_s, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    # -- the request head -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_head = True
        if self._read_timer is None:  # a kept-alive connection's next request starts its clock
            self._arm(self.edge.header_timeout_s, self._head_timed_out)

    def on_headers_complete(self) -> None:
        self._reading_head = False
        super().on_headers_complete()
        # Until on_message_complete, which comes at once for a request without a body.
        self._arm(self.edge.body_timeout_s, self._body_timed_out)

    def _head_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        idle = self.cycle is None or self.cycle.response_complete
        if self._reading_head and idle:
            self._answer_and_close(408, "The request head was not received in time.", "request_timeout")
        else:
            # Nothing was ever sent (nobody to answer), or a pipelined head stalled while an
            # earlier response is still going out: a 408 now would land in its middle.
            self.transport.close()

    # -- the request body -------------------------------------------------------------------

    def on_body(self, body: bytes) -> None:
        self._arm(self.edge.body_timeout_s, self._body_timed_out)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _body_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        if self.flow.read_paused:
            # We stopped reading, not the client: the app has not taken the last piece yet.
            self._arm(self.edge.body_timeout_s, self._body_timed_out)
            return
        cycle = self.cycle
        # With pipelining, an earlier response may still be going out: then only close.
        if cycle is not None and not cycle.response_started and not self.pipeline:
            self._answer_and_close(408, "The request body was not received in time.", "request_timeout")
            cycle.response_started = cycle.response_complete = True  # the app's answer is moot
        else:
            self.transport.close()
        if cycle is not None:
            cycle.disconnected = True
            cycle.message_event.set()  # the app's pending receive() returns http.disconnect

    # -- helpers ------------------------------------------------------------------------------

    def on_response_complete(self) -> None:
        if self.cycle is not None and self.cycle.more_body:
            # Answered before the whole body came (e.g. 401): the rest must still arrive in time.
            self._arm(self.edge.body_timeout_s, self._body_timed_out)
        super().on_response_complete()

    def _arm(self, delay: float, callback: Any) -> None:
        self._disarm()
        self._read_timer = self.loop.call_later(delay, callback)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _answer_and_close(
        self, status: int, message: str, code: str, kind: str = "invalid_request_error", extra: bytes = b""
    ) -> None:
        error = GatewayError(message, code=code, status=status)
        error.type = kind
        body = orjson.dumps(error.to_body())
        reason = {408: b"Request Timeout", 503: b"Service Unavailable"}[status]
        head = (
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n%s\r\n" % (status, reason, len(body), extra)
        )
        self.transport.write(head + body)
        self.transport.close()


_DEFAULT_LIMITS = EdgeLimits(
    header_timeout_s=10.0, body_timeout_s=30.0, max_connections=4096, shutdown_grace_s=30.0
)
