"""The ``diffusers`` provider: a local Hugging Face diffusers pipeline (SD-Turbo, SDXL-Turbo, FLUX…).

The model runs in-process on CUDA when present, else on the CPU, in a worker thread so the
event loop never waits on it. Requests of the same shape are micro-batched into one call.
Needs the optional extra (``pip install 'imagegate[local]'``); a channel without it fails
at start-up with that command in the message.

Per request:

- ``seed`` (an extra body field, e.g. ``extra_body={"seed": 7}`` in the openai SDK): image
  ``i`` of ``n`` uses ``seed + i``; without one a random seed is drawn. Each image reports its
  seed, and the same seed, prompt, size and channel options give the same image.
- ``size``: ``WxH`` is rounded to the model's latent grid (a multiple of 8, or 16 for FLUX);
  ``auto`` is the model's native size. The result reports the size actually made.
- streaming: ``partial_images`` previews decoded from intermediate latents, then the result.
- edits: image-to-image with the first input image when the model family has an img2img
  pipeline (no masks); otherwise 400.

Channel options: see :class:`~imagegate.providers.local.loader.LocalOptions`.
"""

from __future__ import annotations

import asyncio
import io
import math
import secrets
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from imagegate.domain import (
    GeneratedImage,
    ImageBlob,
    ImageRequest,
    ImageResult,
    PartialImage,
    ProviderEvent,
)
from imagegate.errors import InvalidRequest, UpstreamFailed, UpstreamTimeout
from imagegate.media.sizes import parse_size
from imagegate.providers.base import Provider
from imagegate.providers.local.batching import BatchKey, Done, EventSink, Failed, Job, Partial
from imagegate.providers.local.engine import Engine
from imagegate.providers.local.loader import LocalOptions, load_model

if TYPE_CHECKING:
    from imagegate.http import HttpClients
    from imagegate.settings import ChannelConfig

MAX_SEED = 2**63 - 1
_RANDOM_SEED_BITS = 32


class DiffusersProvider(Provider):
    name = "diffusers"
    can_stream = True
    can_edit = True
    needs_key = False

    def __init__(self, channel: ChannelConfig, http: HttpClients) -> None:
        super().__init__(channel, http)
        self.options = LocalOptions.of(channel)
        self.model = load_model(channel, self.options)
        self.engine = Engine(
            self.model,
            max_images=self.options.max_batch,
            window_s=self.options.batch_window_ms / 1000,
            name=channel.name,
        )

    async def generate(self, request: ImageRequest, upstream_model: str) -> AsyncIterator[ProviderEvent]:
        width, height = self._size(request.size, self.model.default_size)
        key = BatchKey(width, height, self.options.steps, self.options.guidance_scale)
        async for event in self._run(request, key, init_image=None):
            yield event

    async def edit(self, request: ImageRequest, upstream_model: str) -> AsyncIterator[ProviderEvent]:
        if not self.model.can_edit:
            raise InvalidRequest(
                f"The model '{request.model}' cannot edit images (its pipeline has no image-to-image mode).",
                param="model",
            )
        if request.mask is not None:
            raise InvalidRequest(
                f"The model '{request.model}' does not support masks: it edits the whole image.",
                param="mask",
            )
        if not request.images:
            raise InvalidRequest("An edit needs an image.", param="image")
        source = request.images[0]
        width, height = self._size(request.size, _fit(source.width, source.height, self.model.default_size))
        init_image = await asyncio.to_thread(_load_rgb, source.data, (width, height))
        # Img2img runs int(steps * strength) steps: keep at least one.
        steps = max(self.options.steps, math.ceil(1 / self.options.strength))
        key = BatchKey(width, height, steps, self.options.guidance_scale, edit_id=id(init_image))
        async for event in self._run(request, key, init_image=init_image):
            yield event

    async def aclose(self) -> None:
        await asyncio.to_thread(self.engine.close)

    # -- one request --------------------------------------------------------------------------

    async def _run(
        self, request: ImageRequest, key: BatchKey, init_image: Any
    ) -> AsyncIterator[ProviderEvent]:
        seed = _seed(request)
        job = Job(
            key=key,
            prompt=request.prompt,
            seeds=[(seed + index) % (MAX_SEED + 1) for index in range(request.n)],
            sink=EventSink(),
            partial_images=request.partial_images if request.stream else 0,
            init_image=init_image,
            strength=self.options.strength,
        )
        size = f"{key.width}x{key.height}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.channel.timeout_s
        try:
            self.engine.submit(job)
        except RuntimeError as exc:  # closed: the gateway is shutting down
            raise UpstreamFailed("The local model is shutting down.", code="local_model_error") from exc
        try:
            while True:
                try:
                    event = await asyncio.wait_for(job.sink.queue.get(), deadline - loop.time())
                except TimeoutError as exc:
                    raise UpstreamTimeout(
                        f"The local model did not finish within {self.channel.timeout_s:g} s."
                    ) from exc
                if isinstance(event, Partial):
                    raw = await asyncio.to_thread(_png, event.image)
                    yield PartialImage(index=event.index, image=ImageBlob(raw=raw), size=size)
                elif isinstance(event, Done):
                    yield await self._result(event, job.seeds, size)
                    return
                else:
                    raise _failure(event)
        finally:
            # Closed or cancelled early (client gone, timeout): the step callback stops the run.
            job.cancel()

    async def _result(self, done: Done, seeds: list[int], size: str) -> ImageResult:
        images = []
        for image, seed in zip(done.images, seeds, strict=True):
            raw = await asyncio.to_thread(_png, image)
            images.append(GeneratedImage(blob=ImageBlob(raw=raw), seed=seed))
        return ImageResult(images=images, size=size, output_format="png", created=int(time.time()))

    def _size(self, size: str, auto: tuple[int, int]) -> tuple[int, int]:
        dims = parse_size(size) or auto
        multiple = self.model.size_multiple
        width, height = (max(multiple, round(side / multiple) * multiple) for side in dims)
        return width, height


def _seed(request: ImageRequest) -> int:
    value = request.extra.get("seed")
    if value is None:
        return secrets.randbits(_RANDOM_SEED_BITS)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
        raise InvalidRequest(f"Invalid seed {value!r}: use an integer from 0 to {MAX_SEED}.", param="seed")
    return value


def _failure(event: Failed) -> UpstreamFailed:
    detail = f"{type(event.error).__name__}: {event.error}"[:300]
    error = UpstreamFailed(f"The local model failed: {detail}", code="local_model_error")
    error.__cause__ = event.error
    return error


def _fit(width: int, height: int, native: tuple[int, int]) -> tuple[int, int]:
    """An edit's ``auto`` size: the input's shape at the model's native long side."""
    scale = max(native) / max(width, height)
    return round(width * scale), round(height * scale)


def _load_rgb(data: bytes, size: tuple[int, int]) -> Any:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB").resize(size, Image.Resampling.LANCZOS)


def _png(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
