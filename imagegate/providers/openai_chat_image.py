"""An upstream that serves a chat-image model on its /chat/completions (like ``gpt-image-2-chat``).

The gateway asks for an image in a chat request (the prompt with a size prefix, input images as
data URLs) and finds the image(s) in the reply: Markdown images, bare URLs or data URIs in the
content, or an ``images`` array on the message. Through the same channel such an upstream
serves /v1/images/generations, /v1/images/edits and the gateway's own chat-image models.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson

from imagegate.domain import GeneratedImage, ImageBlob, ImageRequest, ImageResult, ProviderEvent, Usage
from imagegate.errors import UpstreamFailed
from imagegate.media.links import image_links
from imagegate.providers.base import Provider
from imagegate.providers.openai import openai_client
from imagegate.providers.upstream import parse_usage

if TYPE_CHECKING:
    from imagegate.http import HttpClients
    from imagegate.settings import ChannelConfig

_DATA_URI = re.compile(r"data:image/[a-zA-Z+.-]+;base64,(?P<b64>[A-Za-z0-9+/=\s]+)")


def chat_prompt(request: ImageRequest) -> str:
    """The prompt with the size prefix chat-image models read (``1536x1024 'prompt'``)."""
    return f"{request.size} '{request.prompt}'"


def find_images(message: dict[str, Any]) -> list[GeneratedImage]:
    """Every image in an assistant message, in order, whichever way the upstream wrote it."""
    found: list[GeneratedImage] = []
    for item in message.get("images") or []:
        url = (item.get("image_url") or {}).get("url") if isinstance(item, dict) else None
        if isinstance(url, str):
            found.extend(_from_reference(url))
    content = message.get("content")
    if isinstance(content, list):  # content parts
        content = "\n".join(str(part.get("text") or "") for part in content if isinstance(part, dict))
    if isinstance(content, str) and not found:
        found.extend(_from_text(content))
    return found


def _from_reference(reference: str) -> list[GeneratedImage]:
    match = _DATA_URI.match(reference)
    if match:
        return [GeneratedImage(blob=ImageBlob.from_b64(re.sub(r"\s", "", match["b64"])))]
    if reference.startswith(("http://", "https://")):
        return [GeneratedImage(url=reference)]
    return []


def _from_text(text: str) -> list[GeneratedImage]:
    images = [
        GeneratedImage(blob=ImageBlob.from_b64(re.sub(r"\s", "", m["b64"]))) for m in _DATA_URI.finditer(text)
    ]
    if images:
        return images
    return [GeneratedImage(url=url) for url in image_links(text)]


class OpenAIChatImageProvider(Provider):
    name = "openai-chat-image"
    # The upstream answers one chat message; partial images have no place in it.
    can_stream = False
    can_edit = True
    needs_key = True

    def __init__(self, channel: ChannelConfig, http: HttpClients) -> None:
        super().__init__(channel, http)
        self.upstream = openai_client(channel, http)

    async def generate(self, request: ImageRequest, upstream_model: str) -> AsyncIterator[ProviderEvent]:
        yield await self._run(request, upstream_model)

    async def edit(self, request: ImageRequest, upstream_model: str) -> AsyncIterator[ProviderEvent]:
        yield await self._run(request, upstream_model)

    async def _run(self, request: ImageRequest, upstream_model: str) -> ImageResult:
        # A chat reply holds one image; n images are n replies, asked for at once.
        replies = await asyncio.gather(*(self._ask(request, upstream_model) for _ in range(request.n)))
        images = [image for reply_images, _ in replies for image in reply_images]
        usages = [reply_usage for _, reply_usage in replies if reply_usage is not None]
        usage = Usage.combined(usages) if usages else None
        return ImageResult(images=images, usage=usage if usage and usage.total_tokens else None)

    def _body(self, request: ImageRequest, upstream_model: str) -> dict[str, Any]:
        content: list[dict[str, Any]] = [{"type": "text", "text": chat_prompt(request)}]
        for image in request.images:
            url = f"data:image/{image.format};base64,{ImageBlob(raw=image.data).b64()}"
            content.append({"type": "image_url", "image_url": {"url": url}})
        metadata = {"size": request.size}
        for name in ("quality", "background", "output_format"):
            value = getattr(request, name)
            if value is not None:
                metadata[name] = value
        body: dict[str, Any] = {
            "model": upstream_model,
            "messages": [{"role": "user", "content": content}],
            "stream": False,
            "metadata": metadata,
        }
        if request.user:
            body["user"] = request.user
        return body

    async def _ask(
        self, request: ImageRequest, upstream_model: str
    ) -> tuple[list[GeneratedImage], Usage | None]:
        payload = orjson.dumps(self._body(request, upstream_model))
        headers = {"Content-Type": "application/json"}
        async with self.upstream.post(
            "/chat/completions", upstream_model, data=payload, headers=headers
        ) as response:
            raw = await response.read()
        return self._parse(raw)

    def _parse(self, raw: bytes) -> tuple[list[GeneratedImage], Usage | None]:
        channel = self.channel.name
        try:
            body = orjson.loads(raw)
            message = body["choices"][0]["message"]
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
            raise UpstreamFailed(
                f"channel {channel}: the upstream's chat reply was malformed", code="upstream_bad_response"
            ) from exc
        images = find_images(message)
        if not images:
            text = str(message.get("content") or "")[:200]
            raise UpstreamFailed(
                f"channel {channel}: the upstream's reply had no image: {self.upstream.scrub(text)!r}",
                code="upstream_no_image",
            )
        return images, _chat_usage(body.get("usage"))


def _chat_usage(usage: Any) -> Usage | None:
    """Chat-completions usage (prompt/completion tokens) in the images API's terms, checked."""
    if not isinstance(usage, dict):
        return parse_usage(usage)
    return parse_usage(
        {"input_tokens": usage.get("prompt_tokens"), "output_tokens": usage.get("completion_tokens")}
    )
