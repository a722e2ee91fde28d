"""Turns the images a client sent (uploads, URLs, data URLs) into validated input images.

Work is bounded before it is done: every image is read and measured from its header first, and
the request's total pixels are checked against its budget before a single image is decoded.
"""

from __future__ import annotations

import asyncio

from imagegate.domain import ImageRequest, ImageSource, InputImage
from imagegate.errors import InvalidRequest
from imagegate.media.fetch import SafeFetcher
from imagegate.media.images import load_input_image, probe_input_image, validate_mask
from imagegate.media.refs import read_image_ref
from imagegate.media.work import run_sized_work
from imagegate.settings import Settings
from imagegate.storage.base import ImageStore, parse_key

MAX_INPUT_IMAGES = 16


class InputLoader:
    def __init__(self, settings: Settings, fetcher: SafeFetcher, store: ImageStore) -> None:
        self.fetcher = fetcher
        self.store = store
        self.own_files = f"{settings.resolved_public_url}/files/"
        self.max_bytes = int(settings.max_image_mb * 1024 * 1024)
        self.max_pixels = settings.max_image_pixels
        self.max_request_pixels = settings.max_request_pixels

    def check_count(self, request: ImageRequest) -> None:
        """The cheap checks on an edit's inputs, before anything is fetched or charged."""
        if request.operation != "edit":
            return
        if not request.sources:
            raise InvalidRequest(
                "An edit needs at least one image.", param="image", code="missing_required_parameter"
            )
        if len(request.sources) > MAX_INPUT_IMAGES:
            raise InvalidRequest(
                f"Too many images: {len(request.sources)} given, at most {MAX_INPUT_IMAGES} are accepted.",
                param="image",
            )

    async def load(self, request: ImageRequest) -> None:
        """Fill ``request.images`` and ``request.mask`` from its sources."""
        if not request.sources:
            return
        self.check_count(request)
        sources = [*request.sources, *([request.mask_source] if request.mask_source else [])]
        datas = list(await asyncio.gather(*(self._read(source) for source in sources)))
        pixels = self._check_budget(sources, datas)
        loaded = [
            await self._decode(source, data, count)
            for source, data, count in zip(sources, datas, pixels, strict=True)
        ]
        request.images = loaded[: len(request.sources)]
        if request.mask_source is not None:
            request.mask = loaded[-1]
            validate_mask(request.mask, request.images[0])

    def _check_budget(self, sources: list[ImageSource], datas: list[bytes]) -> list[int]:
        """Each image's pixels, from its header; refuses a request over its total budget."""
        pixels = []
        for source, data in zip(sources, datas, strict=True):
            width, height = probe_input_image(
                data, param=source.param, max_bytes=self.max_bytes, max_pixels=self.max_pixels
            )
            pixels.append(width * height)
        total = sum(pixels)
        if total > self.max_request_pixels:
            raise InvalidRequest(
                f"The request's images hold {total} pixels in all; the limit is "
                f"{self.max_request_pixels} pixels per request.",
                param="image",
                code="image_too_large",
            )
        return pixels

    async def _decode(self, source: ImageSource, data: bytes, pixels: int) -> InputImage:
        # Decoding checks every pixel: large images queue in the bounded image pool, so a
        # few heavy edits cannot delay everyone else's small requests.
        return await run_sized_work(
            pixels * 4,
            load_input_image,
            data,
            param=source.param,
            max_bytes=self.max_bytes,
            max_pixels=self.max_pixels,
        )

    async def _read(self, source: ImageSource) -> bytes:
        if source.data is not None:
            return source.data
        assert source.url is not None
        own = await self._read_own(source.url)
        if own is not None:
            return own
        return await read_image_ref(source.url, self.fetcher, param=source.param)

    async def _read_own(self, url: str) -> bytes | None:
        """An image this gateway hosts is read from its store, not fetched over the network."""
        if not url.startswith(self.own_files):
            return None
        image = parse_key(url.removeprefix(self.own_files))
        return await self.store.get(image) if image is not None else None
