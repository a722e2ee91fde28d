"""Keeps the prompt, parameters and image links of every JSON image request, for the gallery.

`DetailMiddleware` watches ``POST /v1/images/*`` and ``/v1/chat/completions`` with a JSON body
of at most `MAX_BODY` bytes, reads the answer as it streams by (JSON or SSE) and hands a
`RequestDetail` to `DetailRecorder`, which writes them in batches off the request path, like the
request log. Requests through the console's pass-through are recorded there instead (with their
uploaded inputs stored). Multipart bodies and large JSON bodies are not read: the request log
row still has everything else.

    recorder = DetailRecorder(engine); await recorder.start()
    app.add_middleware(DetailMiddleware)     # finds the recorder on app.state.console_recorder
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import asdict

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imagegate.console.capture import CAPTURED_PATHS, Capture
from imagegate.db.request_details import RequestDetail
from imagegate.db.tables import RequestDetailRow

logger = logging.getLogger("imagegate.console")

MAX_BODY = 256 * 1024
#: Set on requests the console's pass-through makes, which keep their own detail.
CONSOLE_SCOPE_KEY = "imagegate.console"


class DetailRecorder:
    def __init__(self, engine: AsyncEngine, *, interval_s: float = 0.5, max_queue: int = 20_000) -> None:
        self._engine = engine
        self.interval_s = interval_s
        self.max_queue = max_queue
        self._queue: deque[RequestDetail] = deque()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def submit(self, detail: RequestDetail) -> None:
        if len(self._queue) >= self.max_queue:
            self.dropped += 1
            return
        self._queue.append(detail)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="imagegate-request-details")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def flush(self) -> None:
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(500, len(self._queue)))]
            rows = [_row(detail) for detail in batch]
            try:
                async with self._engine.begin() as connection:
                    await connection.execute(insert(RequestDetailRow), rows)
            except Exception:
                # A detail is a convenience; the request log row is what counts. Drop, don't wedge.
                logger.exception("writing %d request details failed; dropped", len(rows))
                self.dropped += len(rows)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.flush()


def _row(detail: RequestDetail) -> dict[str, object]:
    values = asdict(detail)
    for name in ("params", "inputs", "outputs"):
        values[name] = values[name] or None
    if isinstance(values["prompt"], str):
        values["prompt"] = values["prompt"][:32_000]
    return values


class DetailMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] not in CAPTURED_PATHS
            or scope.get(CONSOLE_SCOPE_KEY)
            or not _small_json(scope)
        ):
            await self.app(scope, receive, send)
            return
        recorder: DetailRecorder | None = getattr(scope["app"].state, "console_recorder", None)
        if recorder is None:
            await self.app(scope, receive, send)
            return
        capture = Capture(scope["path"])

        async def teed_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                capture.on_request(message.get("body", b""))
            return message

        async def teed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                capture.on_response_start(list(message.get("headers", [])))
            elif message["type"] == "http.response.body":
                capture.on_response(message.get("body", b""))
            await send(message)

        await self.app(scope, teed_receive, teed_send)
        try:
            detail = await capture.detail(None)
        except Exception:
            logger.exception("reading a request's detail failed")
            return
        if detail is not None and detail.prompt is not None:
            recorder.submit(detail)


def _small_json(scope: Scope) -> bool:
    json = False
    length = -1
    for name, value in scope["headers"]:
        if name == b"content-type":
            json = value.split(b";")[0].strip().lower() == b"application/json"
        elif name == b"content-length":
            with contextlib.suppress(ValueError):
                length = int(value)
    return json and 0 <= length <= MAX_BODY
