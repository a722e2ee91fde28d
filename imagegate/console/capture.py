"""Keeps what a console (playground) request asked for and got, for the gallery and detail view.

The pass-through sees the request's JSON body and the answer (JSON or SSE) go by; this module
turns them into a `RequestDetail`: the prompt, the parameters, the input images and mask (stored
in the image store, so the detail view can show them) and the output image links.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from datetime import UTC, datetime
from typing import Any

import orjson

from imagegate.db.request_details import RequestDetail, save_detail

logger = logging.getLogger("imagegate.console")

_MARKDOWN_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")
CAPTURED_PATHS = ("/v1/images/generations", "/v1/images/edits", "/v1/chat/completions")
MAX_REQUEST_BYTES = 60 * 1024 * 1024
MAX_RESPONSE_BYTES = 2 * 1024 * 1024
_PARAMS = ("model", "size", "quality", "n", "background", "output_format", "output_compression", "seed")


class Capture:
    """Collects one request's body and answer as they stream; `detail()` builds the record."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.request = bytearray()
        self.response = bytearray()
        self.request_id: str | None = None
        self.content_type = ""
        self.too_big = False

    def on_request(self, chunk: bytes) -> None:
        if len(self.request) + len(chunk) > MAX_REQUEST_BYTES:
            self.too_big = True
            return
        self.request += chunk

    def on_response_start(self, headers: list[tuple[bytes, bytes]]) -> None:
        for name, value in headers:
            if name == b"x-request-id" and self.request_id is None:
                self.request_id = value.decode()
            elif name == b"content-type":
                self.content_type = value.decode()

    def on_response(self, chunk: bytes) -> None:
        if len(self.response) + len(chunk) <= MAX_RESPONSE_BYTES:
            self.response += chunk

    async def save(self, engine: Any, store: Any) -> None:
        detail = await self.detail(store)
        if detail is None:
            return
        try:
            await save_detail(engine, detail)
        except Exception:
            logger.exception("could not keep the detail of %s", self.request_id)

    async def detail(self, store: Any | None) -> RequestDetail | None:
        """The record, or None when the request or its answer could not be read.

        With a ``store``, inline input images (data URLs) are stored and linked; without one
        they are left out (only http(s) links are kept).
        """
        if self.request_id is None or self.too_big:
            return None
        try:
            body = orjson.loads(bytes(self.request))
        except orjson.JSONDecodeError:
            return None
        if not isinstance(body, dict):
            return None
        prompt, inputs = _prompt_and_inputs(self.path, body)
        stored = [await _store_input(store, item) for item in inputs]
        outputs = _outputs(bytes(self.response), self.content_type)
        params = {name: body[name] for name in _PARAMS if name in body}
        if self.path.endswith("/chat/completions") and isinstance(body.get("metadata"), dict):
            params.update({k: v for k, v in body["metadata"].items() if k in _PARAMS})
        return RequestDetail(
            request_id=self.request_id,
            time=datetime.now(UTC),
            prompt=prompt,
            params=params,
            inputs=[item for item in stored if item is not None],
            outputs=outputs,
        )


def _prompt_and_inputs(path: str, body: dict[str, Any]) -> tuple[str | None, list[tuple[str, str]]]:
    """The prompt and the ``(role, url)`` of each input image."""
    inputs: list[tuple[str, str]] = []
    if path.endswith("/chat/completions"):
        prompt = None
        for message in body.get("messages") or []:
            if not isinstance(message, dict) or message.get("role") != "user":
                continue
            content = message.get("content")
            if isinstance(content, str):
                prompt, inputs = content, []
            elif isinstance(content, list):
                texts = [
                    p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
                ]
                prompt = " ".join(t for t in texts if isinstance(t, str)) or prompt
                inputs = [
                    ("image", str((p.get("image_url") or {}).get("url", "")))
                    for p in content
                    if isinstance(p, dict) and p.get("type") == "image_url"
                ]
        return prompt, inputs
    prompt = body.get("prompt") if isinstance(body.get("prompt"), str) else None
    for item in body.get("images") or []:
        if isinstance(item, dict) and isinstance(item.get("image_url"), str):
            inputs.append(("image", item["image_url"]))
    mask = body.get("mask")
    if isinstance(mask, dict) and isinstance(mask.get("image_url"), str):
        inputs.append(("mask", mask["image_url"]))
    return prompt, inputs


async def _store_input(store: Any | None, item: tuple[str, str]) -> dict[str, Any] | None:
    role, url = item
    if store is None or not url.startswith("data:"):
        return {"role": role, "url": url} if url.startswith(("http://", "https://")) else None
    try:
        data = base64.b64decode(url.partition(",")[2], validate=False)
    except (binascii.Error, ValueError):
        return None
    kind = sniff_format(data)
    if kind is None:
        return None
    stored = await store.put(data, kind)
    return {"role": role, "url": f"/files/{stored.key}"}


def sniff_format(data: bytes) -> str | None:
    """png, jpeg or webp from the magic bytes; None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def _outputs(raw: bytes, content_type: str) -> list[dict[str, Any]]:
    if content_type.startswith("text/event-stream"):
        return _sse_outputs(raw)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(body, dict):
        return []
    outputs = []
    for item in body.get("data") or []:
        if isinstance(item, dict) and isinstance(item.get("url"), str):
            outputs.append({"url": item["url"], "revised_prompt": item.get("revised_prompt")})
    for choice in body.get("choices") or []:
        message = choice.get("message") if isinstance(choice, dict) else None
        found = []
        for image in (message or {}).get("images") or []:
            url = (image.get("image_url") or {}).get("url") if isinstance(image, dict) else None
            if isinstance(url, str):
                found.append(url)
        content = (message or {}).get("content")
        if not found and isinstance(content, str):
            found = _MARKDOWN_IMAGE.findall(content)
        outputs.extend({"url": url} for url in found)
    return outputs


def _sse_outputs(raw: bytes) -> list[dict[str, Any]]:
    outputs = []
    for line in raw.split(b"\n"):
        if not line.startswith(b"data:"):
            continue
        try:
            event = orjson.loads(line[5:].strip())
        except orjson.JSONDecodeError:
            continue
        if not isinstance(event, dict):
            continue
        if str(event.get("type", "")).endswith(".completed") and isinstance(event.get("url"), str):
            outputs.append({"url": event["url"], "revised_prompt": event.get("revised_prompt")})
        for choice in event.get("choices") or []:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            for image in (delta or {}).get("images") or []:
                url = (image.get("image_url") or {}).get("url") if isinstance(image, dict) else None
                if isinstance(url, str):
                    outputs.append({"url": url})
    return outputs
