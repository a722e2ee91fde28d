"""A loopback upstream serving a chat-image model on /v1/chat/completions (like gpt-image-2-chat).

It reads the size from the prompt prefix (or ``metadata.size``), makes a real image of that
size, and answers in the style a test picks: a Markdown image, a bare URL, a data URI in the
content, or an ``images`` array on the message.
"""

from __future__ import annotations

import base64
import io
import re
import uuid
from typing import Any

from aiohttp import web
from PIL import Image

from tests.fakes.leaks import leaky_error
from tests.fakes.loopback import LoopbackServer

_PREFIX = re.compile(r"^\s*(auto|\d+x\d+)\s+['\"]?(.*?)['\"]?\s*$", re.S)


class FakeChatImageUpstream(LoopbackServer):
    def __init__(self, api_key: str = "sk-fake-chat-upstream-key") -> None:
        super().__init__()
        self.api_key = api_key
        #: "markdown" | "bare_url" | "data_uri" | "images_array" | "text_only"
        self.style = "markdown"
        self.requests: list[dict[str, Any]] = []
        self._files: dict[str, bytes] = {}
        #: Answer every request with this status and body (an OpenAI error envelope).
        self.fail_status: int | None = None
        self.fail_body: dict[str, Any] | None = None
        #: Report this ``usage`` object instead of plausible counts.
        self.usage: Any = None

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def echo_key_in_errors(self, status: int) -> None:
        """Answer every request with ``status`` and an error quoting the key everywhere."""
        kind = "invalid_request_error" if status < 500 else "server_error"
        self.fail_status = status
        self.fail_body = {"error": leaky_error(self.api_key, type_=kind)}

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/files/{name}", self._file)

    async def _chat(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response(
                {"error": {"message": "bad key", "type": "invalid_request_error"}}, status=401
            )
        body = await request.json()
        self.requests.append(body)
        if self.fail_status is not None:
            return web.json_response(
                self.fail_body or {"error": {"message": "fake"}}, status=self.fail_status
            )
        parts = body["messages"][-1]["content"]
        text = (
            parts
            if isinstance(parts, str)
            else " ".join(p.get("text", "") for p in parts if p["type"] == "text")
        )
        inputs = [] if isinstance(parts, str) else [p for p in parts if p["type"] == "image_url"]
        match = _PREFIX.match(text)
        size = match.group(1) if match else (body.get("metadata") or {}).get("size", "auto")
        width, height = (1024, 1024) if size == "auto" else map(int, size.split("x"))
        buffer = io.BytesIO()
        shade = 40 * len(inputs) % 256
        Image.new("RGB", (width, height), (shade, 120, 200)).save(buffer, format="PNG")
        data = buffer.getvalue()
        content = self._content(request, data)
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if self.style == "images_array":
            message["content"] = "Here is your image."
            url = "data:image/png;base64," + base64.b64encode(data).decode()
            message["images"] = [{"type": "image_url", "image_url": {"url": url}}]
        return web.json_response(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": 1,
                "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": self.usage
                if self.usage is not None
                else {"prompt_tokens": 50 + 100 * len(inputs), "completion_tokens": 1000, "total_tokens": 0},
            }
        )

    def _content(self, request: web.Request, data: bytes) -> str:
        name = f"{uuid.uuid4().hex}.png"
        self._files[name] = data
        url = f"http://127.0.0.1:{self.port}/files/{name}"
        if self.style == "markdown":
            return f"Done! ![generated]({url})"
        if self.style == "bare_url":
            return f"已生成图片:{url}"
        if self.style == "data_uri":
            return "data:image/png;base64," + base64.b64encode(data).decode()
        return "Sorry, I can't draw that."

    async def _file(self, request: web.Request) -> web.Response:
        data = self._files.get(request.match_info["name"])
        if data is None:
            raise web.HTTPNotFound()
        return web.Response(body=data, content_type="image/png")
