"""From a provider's result to delivered images: fetched, checked, converted and stored.

Everything here happens before the request is charged: an upstream that answers with something
that is not a whole image is a 502, and a result that cannot be stored is a 503, both free.

    delivery = Delivery(store, http, public_url)
    generated = await delivery.deliver(request, result, channel, hosted=True)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import aiohttp

from imagegate.domain import DeliveredImage, Generated, GeneratedImage, ImageBlob, ImageRequest, ImageResult
from imagegate.errors import StorageUnavailable, UpstreamFailed, UpstreamTimeout
from imagegate.http import HttpClients
from imagegate.media.inspect import ImageInfo, inspect_image
from imagegate.media.transcode import convert_image
from imagegate.media.work import run_sized_work
from imagegate.providers.registry import Channel
from imagegate.storage.base import ImageStore, StoreUnreachable

_T = TypeVar("_T")
#: Below this many bytes image work is quicker done at once than handed to a worker thread.
_INLINE_BYTES = 256 * 1024
_CONCRETE_QUALITY = ("low", "medium", "high")
_CONCRETE_BACKGROUND = ("transparent", "opaque")


class Delivery:
    def __init__(self, store: ImageStore, http: HttpClients, public_url: str) -> None:
        self.store = store
        self.http = http
        self.public_url = public_url

    async def deliver(
        self,
        request: ImageRequest,
        result: ImageResult,
        channel: Channel,
        *,
        hosted: bool,
        keep_bytes: bool = True,
    ) -> Generated:
        """Every image of ``result`` checked, in the asked format, and stored when ``hosted``.

        ``keep_bytes=False`` lets a hosted image's bytes go as soon as they are stored.

        ``result.size`` is set to the size really made, so the charge follows what was delivered.
        """
        if not result.images:
            raise UpstreamFailed("The upstream returned no images.", code="upstream_bad_response")
        delivered: list[DeliveredImage] = []
        first: ImageInfo | None = None
        for image in result.images:
            blob = image.blob if image.blob is not None else await self._download(image, channel)
            info = _inspected(blob)
            first = first or info
            blob = await self._converted(blob, info, request)
            image.blob = None  # the delivered copy is the one kept
            if hosted and not keep_bytes:
                # Only the bytes are stored: let the upstream's base64 (a view of its whole
                # multi-megabyte answer) go before the upload, not after it.
                blob = ImageBlob(raw=await _cpu(blob.raw, len(blob)))
            url = await self._host(blob) if hosted else None
            kept = blob if keep_bytes or url is None else None
            delivered.append(DeliveredImage(kept, url, image.revised_prompt, image.seed))
            del blob
        assert first is not None
        result.size = first.size
        output_format = request.output_format or first.format  # what _converted made of it
        return Generated(
            images=delivered,
            created=result.created or int(time.time()),
            output_format=output_format,
            size=first.size,
            quality=result.quality or _concrete(request.quality, _CONCRETE_QUALITY),
            background=result.background
            or _concrete(request.background, _CONCRETE_BACKGROUND)
            or ("opaque" if output_format == "jpeg" else None),
            usage=result.usage,
        )

    async def _converted(self, blob: ImageBlob, info: ImageInfo, request: ImageRequest) -> ImageBlob:
        wanted = request.output_format or info.format
        if wanted == info.format:
            return blob  # passthrough: base64 stays undecoded
        try:
            converted = await _cpu(
                lambda: convert_image(
                    blob.raw(), wanted, compression=request.output_compression, background=request.background
                ),
                info.width * info.height * 4,
            )
        except ValueError as exc:
            raise _not_an_image() from exc
        return ImageBlob(raw=converted)

    async def _host(self, blob: ImageBlob) -> str:
        fmt = blob.format or "png"
        raw = await _cpu(blob.raw, len(blob))
        try:
            stored = await self.store.put(raw, fmt)
            return await self.store.url_for(stored, self.public_url)
        except (OSError, StoreUnreachable) as exc:
            raise StorageUnavailable(
                "The image could not be stored; nothing was charged. Try again later."
            ) from exc

    async def _download(self, image: GeneratedImage, channel: Channel) -> ImageBlob:
        """An image the upstream answered with as a URL, fetched with the channel's timeout."""
        if not image.url:
            raise UpstreamFailed("The upstream returned an image with no data.", code="upstream_bad_response")
        timeout = aiohttp.ClientTimeout(total=channel.config.timeout_s)
        try:
            async with self.http.upstream.get(image.url, timeout=timeout) as response:
                if response.status != 200:
                    raise UpstreamFailed(
                        f"Downloading the upstream's image failed with HTTP {response.status}.",
                        code="upstream_bad_response",
                    )
                return ImageBlob(raw=await response.read())
        except TimeoutError as exc:
            raise UpstreamTimeout("Downloading the upstream's image timed out.") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamFailed(
                "Downloading the upstream's image failed.", code="upstream_unreachable"
            ) from exc


async def _cpu(work: Callable[[], _T], weight: int) -> _T:
    """Run image work: tiny jobs at once, others off the event loop (large ones in the pool)."""
    if weight < _INLINE_BYTES:
        return work()
    return await run_sized_work(weight, work)


def _inspected(blob: ImageBlob) -> ImageInfo:
    # At once, whatever the image's size: only its first and last bytes are decoded. A trip to a
    # worker thread would hold the whole upstream answer in memory for nothing meanwhile.
    try:
        return inspect_image(blob)
    except ValueError as exc:
        raise _not_an_image() from exc


def _not_an_image() -> UpstreamFailed:
    return UpstreamFailed("The upstream returned data that is not an image.", code="upstream_bad_response")


def _concrete(value: str | None, allowed: tuple[str, ...]) -> str | None:
    return value if value in allowed else None
