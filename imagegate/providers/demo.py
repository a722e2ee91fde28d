"""The built-in, keyless ``demo`` provider: real images, drawn locally, no upstream account.

It exists so a new user can try every endpoint (streaming and edits included) right after
install. Pictures are deterministic (the same request gives the same bytes) and the usage
numbers are plausible estimates shaped like OpenAI's, so billing can be exercised too.

Usage::

    provider = DemoProvider(ChannelConfig(name="demo", provider="demo"), http)
    async for event in provider.run(request, "demo"):
        ...  # PartialImage previews when streaming, then one ImageResult
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable

from PIL import Image

from imagegate.domain import (
    GeneratedImage,
    ImageBlob,
    ImageFormat,
    ImageRequest,
    ImageResult,
    PartialImage,
    ProviderEvent,
    Usage,
)
from imagegate.errors import InvalidRequest
from imagegate.media.sizes import parse_size
from imagegate.media.work import run_image_work
from imagegate.providers import demo_render
from imagegate.providers.base import Provider

DEFAULT_SIZE = (1024, 1024)
DEFAULT_COMPRESSION = 95
# OpenAI's published output token counts for a 1024x1024 gpt-image-1 image.
OUTPUT_TOKENS = {"low": 272, "medium": 1056, "high": 4160}
_EDIT_LONG_SIDE = (512, 3840)

Render = Callable[[int], Image.Image]


def edit_auto_size(width: int, height: int) -> tuple[int, int]:
    """The source's shape, long side clamped into 512..3840, both sides multiples of 16."""
    long_side = max(width, height)
    scale = min(max(long_side, _EDIT_LONG_SIDE[0]), _EDIT_LONG_SIDE[1]) / long_side
    return (max(16, round(width * scale / 16) * 16), max(16, round(height * scale / 16) * 16))


def input_image_tokens(width: int, height: int) -> int:
    """Roughly OpenAI's image-input cost: fit in 2048², short side to 768, 512px tiles."""
    fitted = min(1.0, 2048 / max(width, height))
    scaled_w, scaled_h = width * fitted, height * fitted
    shrink = min(1.0, 768 / min(scaled_w, scaled_h))
    tiles = math.ceil(scaled_w * shrink / 512) * math.ceil(scaled_h * shrink / 512)
    return 65 + 129 * tiles


def estimate_usage(request: ImageRequest, size: tuple[int, int], quality: str) -> Usage:
    text = math.ceil(len(request.prompt) / 4)
    image = sum(input_image_tokens(item.width, item.height) for item in request.images)
    per_image = round(OUTPUT_TOKENS[quality] * size[0] * size[1] / (1024 * 1024))
    return Usage(
        input_tokens=text + image,
        output_tokens=per_image * request.n,
        text_tokens=text,
        image_tokens=image,
    )


class DemoProvider(Provider):
    name = "demo"
    can_stream = True
    can_edit = True
    needs_key = False

    async def generate(self, request: ImageRequest, upstream_model: str) -> AsyncIterator[ProviderEvent]:
        size = parse_size(request.size) or DEFAULT_SIZE
        transparent = _is_transparent(request)

        def render(index: int) -> Image.Image:
            return demo_render.render_generation(request.prompt, index, size, transparent)

        async for event in _produce(request, size, transparent, render):
            yield event

    async def edit(self, request: ImageRequest, upstream_model: str) -> AsyncIterator[ProviderEvent]:
        if not request.images:
            raise InvalidRequest("an edit needs at least one image", param="image")
        first = request.images[0]
        size = parse_size(request.size) or edit_auto_size(first.width, first.height)
        transparent = _is_transparent(request)
        sources = [item.data for item in request.images]
        mask = request.mask.data if request.mask is not None else None

        def render(index: int) -> Image.Image:
            return demo_render.render_edit(request.prompt, index, size, sources, mask, transparent)

        async for event in _produce(request, size, transparent, render):
            yield event


def _output_format(request: ImageRequest) -> ImageFormat:
    return request.output_format or "png"


def _is_transparent(request: ImageRequest) -> bool:
    # The service refuses transparent JPEG; a direct caller gets an opaque image, not an error.
    return request.background == "transparent" and _output_format(request) != "jpeg"


async def _produce(
    request: ImageRequest, size: tuple[int, int], transparent: bool, render: Render
) -> AsyncIterator[ProviderEvent]:
    """Render (off the event loop), stream previews of the first image, then the result."""
    output_format = _output_format(request)
    compression = DEFAULT_COMPRESSION if request.output_compression is None else request.output_compression
    size_text = f"{size[0]}x{size[1]}"

    def render_encoded(index: int) -> bytes:
        return demo_render.encode(render(index), output_format, compression)

    def encode_preview(first: Image.Image, step: int, steps: int) -> bytes:
        return demo_render.encode(demo_render.preview(first, step, steps), output_format, compression)

    # An edit's render decodes the client's images: heavy work, queued in the bounded pool so
    # it cannot delay small requests.
    run = run_image_work if request.images else asyncio.to_thread
    first = await run(render, 0)
    if request.stream and request.partial_images > 0:
        steps = request.partial_images
        for step in range(steps):
            preview = await run(encode_preview, first, step, steps)
            yield PartialImage(index=step, image=ImageBlob(raw=preview), size=size_text)
    blobs = [await run(demo_render.encode, first, output_format, compression)]
    for index in range(1, request.n):
        blobs.append(await run(render_encoded, index))
    quality = request.quality if request.quality and request.quality in OUTPUT_TOKENS else "medium"
    yield ImageResult(
        images=[GeneratedImage(blob=ImageBlob(raw=raw), revised_prompt=request.prompt) for raw in blobs],
        usage=estimate_usage(request, size, quality),
        size=size_text,
        quality=quality,
        background="transparent" if transparent else "opaque",
        output_format=output_format,
        created=int(time.time()),
    )
