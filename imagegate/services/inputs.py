"""Turns the images a client sent (uploads, URLs, data URLs) into validated input images."""

from __future__ import annotations

import asyncio

from imagegate.domain import ImageSource, InputImage
from imagegate.errors import InvalidRequest
from imagegate.media.fetch import SafeFetcher
from imagegate.media.images import load_input_image, validate_mask
from imagegate.media.refs import read_image_ref
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

    async def load(self, source: ImageSource) -> InputImage:
        data = source.data
        if data is None:
            assert source.url is not None
            data = await self._read_own(source.url)
        if data is None:
            assert source.url is not None
            data = await read_image_ref(source.url, self.fetcher, param=source.param)
        # Decoding checks every pixel: a worker thread keeps the event loop free meanwhile.
        return await asyncio.to_thread(
            load_input_image, data, param=source.param, max_bytes=self.max_bytes, max_pixels=self.max_pixels
        )

    async def _read_own(self, url: str) -> bytes | None:
        """An image this gateway hosts is read from its store, not fetched over the network."""
        if not url.startswith(self.own_files):
            return None
        image = parse_key(url.removeprefix(self.own_files))
        path = self.store.local_path(image) if image is not None else None
        return await asyncio.to_thread(path.read_bytes) if path is not None else None

    async def load_edit_inputs(
        self, images: list[ImageSource], mask: ImageSource | None
    ) -> tuple[list[InputImage], InputImage | None]:
        if not images:
            raise InvalidRequest(
                "An edit needs at least one image.", param="image", code="missing_required_parameter"
            )
        if len(images) > MAX_INPUT_IMAGES:
            raise InvalidRequest(
                f"Too many images: {len(images)} given, at most {MAX_INPUT_IMAGES} are accepted.",
                param="image",
            )
        loaded = list(await asyncio.gather(*(self.load(source) for source in images)))
        loaded_mask = None
        if mask is not None:
            loaded_mask = await self.load(mask)
            validate_mask(loaded_mask, loaded[0])
        return loaded, loaded_mask
