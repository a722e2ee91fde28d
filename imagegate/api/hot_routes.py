"""The API's busiest endpoints, dispatched without FastAPI's per-request stack.

Image generations, edits and chat completions parse their own bodies and need none of what
FastAPI's stack does per request: dependency injection, its exception, body-limit and
telemetry middlewares, and a walk over every route of the admin API and the console to find
theirs. On the small-payload benchmark that walk and those layers were a fifth of the gateway's
CPU per request. So an exact ``(method, path)`` lookup sends these requests straight to their
endpoint, and their exceptions are answered by the same handlers as everywhere else
(`imagegate.api.errors`). Any other request, and a hot path asked with another method, goes
to FastAPI unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from imagegate.api.errors import exception_response

Endpoint = Callable[[Request], Awaitable[Response]]


class HotRoutes:
    def __init__(self, app: ASGIApp, routes: Mapping[tuple[str, str], Endpoint]) -> None:
        self.app = app
        self.routes = dict(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = None
        # Under a root path the router's path rules apply; it is not worth repeating them here.
        if scope["type"] == "http" and not scope.get("root_path"):
            endpoint = self.routes.get((scope["method"], scope["path"]))
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive, send)
        try:
            response = await endpoint(request)
        except Exception as exc:
            response = await exception_response(request, exc)
        # Errors while the body streams are the renderers' to put into the stream (SSE error
        # frames); anything that still escapes ends the connection, as it would under FastAPI.
        await response(scope, receive, send)
