"""A fast fake OpenAI Images upstream for the load benchmark.

Serves ``POST /v1/images/generations`` from precomputed bodies, so the benchmark measures the
gateway and not the upstream. The request's ``model`` picks the case:

- ``bench-small``: a real 64x64 PNG as ``b64_json`` (a few hundred bytes);
- ``bench-4mb``: a real 1024x1024 RGBA PNG of noise (~4.2 MB, ~5.6 MB once base64'd);
- ``bench-4mb-unique``: the same image made different per answer by a counter chunk (storage bench);
- ``bench-slow``: the small PNG, answered after ``--slow-s`` seconds (default 5);
- ``bench-stream``: with ``"stream": true``, the 4 MB image as Server-Sent Events: one
  ``image_generation.partial_image`` event per ``partial_images`` (0-3), then the completed event.

Usage::

    python bench/fake_upstream.py --port 9100               # raw ASGI on uvicorn (default)
    python bench/fake_upstream.py --port 9100 --server aiohttp

Both servers share the same precomputed bodies; the raw ASGI app on uvicorn (httptools +
uvloop) measured faster on the 2-core bench box, so it is the default (see bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import os
import struct
import time
import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from PIL import Image

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

SMALL, BIG, SLOW, STREAM = "bench-small", "bench-4mb", "bench-slow", "bench-stream"
UNIQUE = "bench-4mb-unique"
JSON, EVENT_STREAM = b"application/json", b"text/event-stream"


def small_png() -> bytes:
    """A 64x64 gradient: a real, decodable PNG that stays tiny."""
    img = Image.new("RGB", (64, 64))
    img.putdata([(x * 4, y * 4, 128) for y in range(64) for x in range(64)])
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def noise_png(side: int = 1024) -> bytes:
    """RGBA noise: incompressible, so the PNG really is ~4 bytes per pixel (~4.2 MB at 1024)."""
    img = Image.frombytes("RGBA", (side, side), os.urandom(side * side * 4))
    buf = io.BytesIO()
    # Level 1: noise doesn't compress anyway, and it keeps start-up under a second.
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


@dataclass
class Case:
    """One precomputed answer; the body is rebuilt at most once a second so `created` stays current."""

    png: bytes
    size: str
    b64: str = field(init=False)
    _second: int = field(default=-1, init=False)
    _body: bytes = field(default=b"", init=False)

    def __post_init__(self) -> None:
        self.b64 = base64.b64encode(self.png).decode("ascii")

    def body(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._body = self.answer_json(self.b64, now)
            self._second = now
        return self._body

    def answer_json(self, b64: str, now: int) -> bytes:
        return orjson.dumps(
            {
                "created": now,
                "data": [{"b64_json": b64}],
                "background": "opaque",
                "output_format": "png",
                "quality": "low",
                "size": self.size,
                "usage": {
                    "input_tokens": 4,
                    "input_tokens_details": {"text_tokens": 4, "image_tokens": 0},
                    "output_tokens": 272,
                    "total_tokens": 276,
                },
            }
        )

    def stream_body(self, partials: int) -> bytes:
        """The same image as OpenAI's streaming events, ``partials`` previews first."""
        common = {
            "created_at": int(time.time()),
            "size": self.size,
            "quality": "low",
            "background": "opaque",
            "output_format": "png",
        }
        events = [
            sse(
                "image_generation.partial_image",
                {
                    "type": "image_generation.partial_image",
                    "b64_json": self.b64,
                    "partial_image_index": i,
                    **common,
                },
            )
            for i in range(partials)
        ]
        usage = {
            "input_tokens": 4,
            "input_tokens_details": {"text_tokens": 4, "image_tokens": 0},
            "output_tokens": 272,
            "total_tokens": 276,
        }
        events.append(
            sse(
                "image_generation.completed",
                {"type": "image_generation.completed", "b64_json": self.b64, "usage": usage, **common},
            )
        )
        return b"".join(events)


@dataclass
class UniqueCase(Case):
    """A different PNG every answer (``bench-4mb-unique``), so a content-addressed store really writes.

    A 30-byte tEXt chunk with a counter goes after the 33 bytes of signature and IHDR; 63 bytes
    is a multiple of 3, so the base64 of the rest is computed once and only the head is encoded
    per answer.
    """

    _count: int = field(default=0, init=False)
    _head: bytes = field(default=b"", init=False)
    _rest_b64: str = field(default="", init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._head, self._rest_b64 = self.png[:33], base64.b64encode(self.png[33:]).decode("ascii")

    def body(self) -> bytes:
        self._count += 1
        text = b"n\x00" + f"{self._count:016x}".encode()
        chunk = struct.pack(">I", len(text)) + b"tEXt" + text + struct.pack(">I", zlib.crc32(b"tEXt" + text))
        b64 = base64.b64encode(self._head + chunk).decode("ascii") + self._rest_b64
        return self.answer_json(b64, int(time.time()))


def sse(event: str, data: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


@dataclass
class Upstream:
    """The routing logic both servers share: (status, body) for a request body."""

    cases: dict[str, Case]
    slow_model: str
    slow_s: float

    async def answer(self, raw: bytes) -> tuple[int, bytes, bytes]:
        """(status, body, content type) for a request body."""
        try:
            request = orjson.loads(raw)
            model = request.get("model")
        except (orjson.JSONDecodeError, AttributeError):
            return 400, error_body("body is not a JSON object", "invalid_request_error", None), JSON
        case = self.cases.get(model) if isinstance(model, str) else None
        if case is None:
            return (
                404,
                error_body(f"unknown model {model!r}", "invalid_request_error", "model_not_found"),
                JSON,
            )
        if model == self.slow_model:
            await asyncio.sleep(self.slow_s)
        if request.get("stream") is True:
            partials = min(max(int(request.get("partial_images") or 0), 0), 3)
            return 200, case.stream_body(partials), EVENT_STREAM
        return 200, case.body(), JSON


def error_body(message: str, kind: str, code: str | None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})


def build_upstream(slow_s: float) -> Upstream:
    small = Case(small_png(), "64x64")
    png = noise_png()
    big = Case(png, "1024x1024")
    unique = UniqueCase(png, "1024x1024")
    return Upstream({SMALL: small, BIG: big, SLOW: small, STREAM: big, UNIQUE: unique}, SLOW, slow_s)


def asgi_app(upstream: Upstream) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """A bare ASGI callable: no framework routing or middleware, which is where the speed comes from."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # uvicorn runs it with lifespan="off"; nothing else to serve
            return
        path, method = scope["path"], scope["method"]
        if method == "POST" and path == "/v1/images/generations":
            chunks: list[bytes] = []
            more = True
            while more:
                msg = await receive()
                chunks.append(msg.get("body", b""))
                more = msg.get("more_body", False)
            status, body, content_type = await upstream.answer(b"".join(chunks))
        elif method == "GET" and path == "/healthz":
            status, body, content_type = 200, b'{"status":"ok"}', JSON
        else:
            status, body, content_type = (
                404,
                error_body(f"no route {method} {path}", "invalid_request_error", None),
                JSON,
            )
        headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def run_uvicorn(upstream: Upstream, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(
        asgi_app(upstream),
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
        # The slow scenario opens 1000 connections at once; a short backlog would drop SYNs
        # and add 1 s retransmit stalls that look like upstream latency.
        backlog=4096,
        # Keep idle benchmark connections around between hey runs rather than churning them.
        timeout_keep_alive=75,
    )


def run_aiohttp(upstream: Upstream, host: str, port: int) -> None:
    import uvloop
    from aiohttp import web

    async def generations(request: web.Request) -> web.Response:
        status, body, content_type = await upstream.answer(await request.read())
        return web.Response(status=status, body=body, content_type=content_type.decode())

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(body=b'{"status":"ok"}', content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/images/generations", generations)
    app.router.add_get("/healthz", healthz)
    uvloop.install()
    web.run_app(app, host=host, port=port, access_log=None, print=None, backlog=4096)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1", help="loopback only; the bench never leaves the box")
    parser.add_argument("--server", choices=["uvicorn", "aiohttp"], default="uvicorn")
    parser.add_argument("--slow-s", type=float, default=5.0, help="delay of the bench-slow model")
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("--host must be a loopback address")
    upstream = build_upstream(args.slow_s)
    if args.server == "aiohttp":
        run_aiohttp(upstream, args.host, args.port)
    else:
        run_uvicorn(upstream, args.host, args.port)


if __name__ == "__main__":
    main()
