"""The console's same-origin door to the gateway's own API: ``/console/api/{v1,admin}/…``.

The browser holds only its session cookie. This ASGI app checks the session (and, for anything
but GET, the ``X-CSRF-Token`` header), then calls the gateway's own app in-process with
``Authorization: Bearer <session token>`` on the real path. Bodies stream both ways untouched, so
uploads, SSE previews and errors are exactly what any API client gets, and each call is logged
under ``/v1/…`` like any other.

    app.mount("/console/api", PassThrough())
    status, body = await call_json(request, viewer, "GET", "/admin/channels")
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from imagegate.console.capture import CAPTURED_PATHS, Capture
from imagegate.console.session import Viewer, csrf_ok, current_viewer

PREFIX = "/console/api"
_ALLOWED = ("/v1/", "/admin/")
_DROPPED_HEADERS = {b"cookie", b"authorization", b"x-csrf-token"}


def _error(status: int, message: str, code: str) -> tuple[int, bytes]:
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    return status, orjson.dumps({"error": error})


async def _send_json(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def inner_scope(scope: Scope, method: str, path: str, query: bytes, token: str) -> Scope:
    """A fresh request scope for ``path`` on the same app, authenticated as the session."""
    headers = [(name, value) for name, value in scope.get("headers", []) if name not in _DROPPED_HEADERS]
    headers.append((b"authorization", f"Bearer {token}".encode()))
    return {
        "type": "http",
        "asgi": scope.get("asgi", {"version": "3.0"}),
        "http_version": scope.get("http_version", "1.1"),
        "method": method,
        "scheme": scope.get("scheme", "http"),
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query,
        "headers": headers,
        "client": scope.get("client"),
        "server": scope.get("server"),
        "extensions": scope.get("extensions", {}),
        "state": {},
        # The pass-through keeps this request's detail itself (with its uploaded inputs).
        "imagegate.console": True,
    }


class PassThrough:
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        path = scope["path"]
        if path.startswith(PREFIX):
            path = path[len(PREFIX) :]
        viewer = await current_viewer(request)
        if viewer is None:
            await _send_json(send, *_error(401, "Sign in to the console first.", "not_signed_in"))
            return
        if scope["method"] not in ("GET", "HEAD") and not csrf_ok(
            viewer.csrf, request.headers.get("x-csrf-token")
        ):
            await _send_json(send, *_error(403, "Missing or wrong CSRF token.", "csrf_failed"))
            return
        if not path.startswith(_ALLOWED) or ".." in path:
            await _send_json(send, *_error(404, "Not an API path.", "not_found"))
            return
        if path.startswith("/admin/") and not viewer.is_admin:
            await _send_json(send, *_error(403, "The admin API needs an admin key.", "admin_key_required"))
            return
        app = scope["app"]
        inner = inner_scope(scope, scope["method"], path, scope.get("query_string", b""), viewer.token)
        if scope["method"] != "POST" or path not in CAPTURED_PATHS:
            await app(inner, receive, send)
            return
        capture = Capture(path)
        json_body = request.headers.get("content-type", "").startswith("application/json")

        async def teed_receive() -> Message:
            message = await receive()
            if json_body and message["type"] == "http.request":
                capture.on_request(message.get("body", b""))
            return message

        async def teed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                capture.on_response_start(list(message.get("headers", [])))
            elif message["type"] == "http.response.body":
                capture.on_response(message.get("body", b""))
            await send(message)

        await app(inner, teed_receive, teed_send)
        if json_body:
            gateway = scope["app"].state.gateway
            await capture.save(gateway.engine, gateway.store)


async def call_json(
    request: Request, viewer: Viewer, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    """Call the gateway's own API in-process as ``viewer``; the status and the decoded JSON body.

    ``path`` may carry a query string (``/v1/images/tasks?limit=50``).
    """
    payload = b"" if body is None else orjson.dumps(body)
    route, _, query = path.partition("?")
    scope = inner_scope(request.scope, method, route, query.encode(), viewer.token)
    scope["headers"] = [
        *[(n, v) for n, v in scope["headers"] if n not in (b"content-type", b"content-length")],
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    sent = False
    status = 500
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": payload, "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await request.app(scope, receive, send)
    raw = b"".join(chunks)
    try:
        return status, orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return status, None
