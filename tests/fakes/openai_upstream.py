"""A loopback server that speaks OpenAI's Images API, for tests that need a real upstream.

Async tests run it in their own loop; sync tests (the openai SDK driving the gateway) run it
in a thread of its own::

    async with FakeOpenAIUpstream() as up:          # or: up = FakeOpenAIUpstream().start_in_thread()
        channel = ChannelConfig(name="main", provider="openai", base_url=up.base_url, api_key=up.api_key)
        up.fail_status = 429                         # knobs are plain attributes, read per request
        ...
        assert up.requests[-1].body["model"] == "gpt-image-2"

Images are real (Pillow), of the asked size and format, so a test can check what a client sees.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import CIMultiDict
from PIL import Image, ImageDraw

from tests.fakes.loopback import LoopbackServer

_PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


@dataclass
class RecordedFile:
    field: str
    filename: str | None
    content_type: str
    data: bytes


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: CIMultiDict[str]
    json: dict[str, Any] | None = None
    fields: dict[str, str] = field(default_factory=dict)
    files: list[RecordedFile] = field(default_factory=list)

    @property
    def body(self) -> dict[str, Any]:
        """The JSON body, or the multipart text fields (all strings, as they travelled)."""
        return self.json if self.json is not None else dict(self.fields)

    @property
    def images(self) -> list[RecordedFile]:
        return [f for f in self.files if f.field == "image" or f.field.startswith("image[")]

    @property
    def mask(self) -> RecordedFile | None:
        return next((f for f in self.files if f.field == "mask"), None)


def _error(status: int, message: str, *, code: str | None, param: str | None = None) -> web.Response:
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return web.json_response(body, status=status)


def _render(width: int, height: int, fmt: str, transparent: bool, shade: int) -> bytes:
    mode = "RGBA" if transparent else "RGB"
    background = (0, 0, 0, 0) if transparent else (40 + shade * 30 % 200, 90, 160)
    image = Image.new(mode, (width, height), background)
    ImageDraw.Draw(image).rectangle((width // 4, height // 4, width * 3 // 4, height * 3 // 4), fill="orange")
    out = io.BytesIO()
    options = {"compress_level": 1} if fmt == "png" else {"quality": 80}
    image.save(out, _PIL_FORMATS[fmt], **options)
    return out.getvalue()


class FakeOpenAIUpstream(LoopbackServer):
    def __init__(self, api_key: str = "sk-fake-upstream-key-0123456789") -> None:
        super().__init__()
        self.api_key = api_key
        self.requests: list[RecordedRequest] = []
        #: "b64" answers b64_json; "url" answers links served by this server under /files/.
        self.mode = "b64"
        #: Answer in this format whatever was asked (an upstream that ignores output_format).
        self.force_format: str | None = None
        #: Answer every request with this status and body (an OpenAI error envelope by default).
        self.fail_status: int | None = None
        self.fail_body: dict[str, Any] | str | None = None
        #: With fail_status: fail only this many requests, then answer normally (None: all).
        self.fail_times: int | None = None
        #: Sleep this long before answering (timeouts, concurrency).
        self.delay_s = 0.0
        #: Answer 200 with a body that is not JSON.
        self.malformed = False
        #: Honour stream=true with SSE; False answers plain JSON as if the flag were ignored.
        self.stream_supported = True
        #: When streaming, send this error object as an `error` event after the partials.
        self.stream_error: dict[str, Any] | None = None
        #: Put this revised_prompt on each image (dall-e-3 style).
        self.revised_prompt: str | None = None
        #: Make images of this size ("WxH") whatever was asked.
        self.made_size: str | None = None
        #: Answer with these bytes as every image, whatever they are (broken upstreams).
        self.image_bytes: bytes | None = None
        #: Report this usage object instead of the one computed from the request.
        self.usage: Any = None
        self._files: dict[str, tuple[bytes, str]] = {}

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/images/generations", self._generations)
        app.router.add_post("/v1/images/edits", self._edits)
        app.router.add_get("/files/{name}", self._file)

    async def _generations(self, request: web.Request) -> web.StreamResponse:
        recorded = RecordedRequest(request.method, request.path, CIMultiDict(request.headers))
        self.requests.append(recorded)
        try:
            recorded.json = await request.json()
        except ValueError:
            return _error(400, "We could not parse the JSON body of your request.", code=None)
        return await self._answer(request, recorded, recorded.body, "image_generation")

    async def _edits(self, request: web.Request) -> web.StreamResponse:
        recorded = RecordedRequest(request.method, request.path, CIMultiDict(request.headers))
        self.requests.append(recorded)
        if request.content_type == "application/json":
            recorded.json = await request.json()
        else:
            form = await request.post()
            for name, value in form.items():
                if isinstance(value, web.FileField):
                    data = value.file.read()
                    recorded.files.append(RecordedFile(name, value.filename, value.content_type, data))
                else:
                    recorded.fields[name] = str(value)
            for number, upload in enumerate([*recorded.images, *filter(None, [recorded.mask])], 1):
                try:
                    Image.open(io.BytesIO(upload.data)).verify()
                except Exception:
                    message = f"Invalid image file or mode for image {number}, please check your image file."
                    return _error(400, message, code="invalid_image_file", param=upload.field)
            if not recorded.images:
                return _error(400, "Missing required parameter: 'image'.", code="missing_required_parameter")
        return await self._answer(request, recorded, recorded.body, "image_edit")

    async def _file(self, request: web.Request) -> web.Response:
        stored = self._files.get(request.match_info["name"])
        if stored is None:
            return _error(404, "no such file", code="not_found")
        return web.Response(body=stored[0], content_type=stored[1])

    async def _answer(
        self, request: web.Request, recorded: RecordedRequest, body: dict[str, Any], kind: str
    ) -> web.StreamResponse:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            given = request.headers.get("Authorization", "").removeprefix("Bearer ")
            message = f"Incorrect API key provided: {given[:3]}***{given[-4:]}."
            return _error(401, message, code="invalid_api_key")
        if self.fail_status is not None and (self.fail_times is None or self.fail_times > 0):
            if self.fail_times is not None:
                self.fail_times -= 1
            if self.fail_body is None:
                return _error(self.fail_status, "fake failure", code=None)
            if isinstance(self.fail_body, str):
                return web.Response(status=self.fail_status, text=self.fail_body)
            return web.json_response(self.fail_body, status=self.fail_status)
        if self.malformed:
            return web.Response(text='{"created": 1, "data": [', content_type="application/json")
        size = self.made_size or str(body.get("size") or "auto")
        try:
            width, height = (1024, 1024) if size == "auto" else map(int, size.lower().split("x"))
        except ValueError:
            return _error(400, f"Invalid value: '{size}'.", code="invalid_value", param="size")
        fmt = self.force_format or str(body.get("output_format") or "png")
        transparent = body.get("background") == "transparent" and fmt in ("png", "webp")
        n, prompt = int(body.get("n") or 1), str(body.get("prompt") or "")
        meta = {
            "size": f"{width}x{height}",
            "quality": str(body.get("quality") or "medium"),
            "background": "transparent" if transparent else "opaque",
            "output_format": fmt,
        }
        text_tokens = len(prompt.split())
        image_tokens = 65 * len(recorded.images or body.get("images") or [])
        usage = {
            "input_tokens": text_tokens + image_tokens,
            "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": image_tokens},
            "output_tokens": 272 * n,
            "total_tokens": text_tokens + image_tokens + 272 * n,
        }
        if self.usage is not None:
            usage = self.usage
        images = [self.image_bytes or _render(width, height, fmt, transparent, i) for i in range(n)]
        if body.get("stream") in (True, "true") and self.stream_supported:
            partials = range(int(body.get("partial_images") or 0))
            previews = [_render(width, height, fmt, transparent, 7 + i) for i in partials]
            return await self._stream(request, kind, previews, images, meta, usage)
        mode = {"url": "url", "b64_json": "b64"}.get(str(body.get("response_format")), self.mode)
        data = [self._image_item(image, fmt, mode) for image in images]
        return web.json_response({"created": int(time.time()), "data": data, "usage": usage, **meta})

    def _image_item(self, image: bytes, fmt: str, mode: str) -> dict[str, Any]:
        item: dict[str, Any] = {}
        if mode == "url":
            name = f"{uuid.uuid4().hex}.{fmt}"
            self._files[name] = (image, f"image/{fmt}")
            item["url"] = self.base_url.removesuffix("/v1") + f"/files/{name}"
        else:
            item["b64_json"] = base64.b64encode(image).decode("ascii")
        if self.revised_prompt is not None:
            item["revised_prompt"] = self.revised_prompt
        return item

    async def _stream(
        self,
        request: web.Request,
        kind: str,
        previews: list[bytes],
        images: list[bytes],
        meta: dict[str, str],
        usage: dict[str, Any],
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Cache-Control": "no-cache"})
        response.content_type = "text/event-stream"
        await response.prepare(request)

        async def send(event: str, data: dict[str, Any]) -> None:
            if event != "error":  # an error event carries only its type and the error
                data = {"type": event, "created_at": int(time.time()), **meta, **data}
            await response.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())

        for index, preview in enumerate(previews):
            b64 = base64.b64encode(preview).decode("ascii")
            await send(f"{kind}.partial_image", {"b64_json": b64, "partial_image_index": index})
        if self.stream_error is not None:
            await send("error", {"type": "error", "error": self.stream_error})
        for image in [] if self.stream_error else images:
            await send(f"{kind}.completed", {"b64_json": base64.b64encode(image).decode(), "usage": usage})
        await response.write_eof()
        return response
