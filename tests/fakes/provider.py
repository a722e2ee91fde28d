"""A stand-in provider for service and routing tests: no HTTP, answers scripted with `enqueue`.

Like simonw/llm's ``MockModel``: each `enqueue` call scripts one call of the provider, as the
events it yields in order; an exception in the script is raised at that point (after the events
before it, so a failure mid-stream is one line). Unscripted calls draw one small PNG per image.

    provider = FakeProvider()
    provider.enqueue(PartialImage(0, ImageBlob(raw=tiny_png())), result(size="64x64"))
    provider.enqueue(UpstreamFailed("boom"))                 # the next call fails at once
    events = [e async for e in provider.run(request, "fake")]
    assert provider.calls[0].request.prompt == "..."

Importing this module registers the ``fake`` (and ``fake-generate-only``) provider names, so a
catalog or a gateway in the same process can serve them from config:
``ChannelConfig(name="f", provider="fake", models=["m"])``.
"""

from __future__ import annotations

import io
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PIL import Image

from imagegate.domain import GeneratedImage, ImageBlob, ImageRequest, ImageResult, ProviderEvent, Usage
from imagegate.providers.base import Provider
from imagegate.settings import ChannelConfig

if TYPE_CHECKING:
    from imagegate.http import HttpClients

Step = ProviderEvent | BaseException


def tiny_png(width: int = 8, height: int = 8, color: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def result(n: int = 1, *, size: str = "8x8", usage: Usage | None = None, **fields: Any) -> ImageResult:
    """A final event with ``n`` small real PNGs of ``size``."""
    width, height = (int(side) for side in size.split("x"))
    images = [GeneratedImage(blob=ImageBlob(raw=tiny_png(width, height))) for _ in range(n)]
    return ImageResult(images=images, usage=usage, size=size, output_format="png", **fields)


@dataclass(frozen=True, slots=True)
class Call:
    request: ImageRequest
    upstream_model: str


class FakeProvider(Provider):
    name = "fake"
    can_stream = True
    can_edit = True
    needs_key = False

    def __init__(self, channel: ChannelConfig | None = None, http: HttpClients | None = None) -> None:
        channel = channel or ChannelConfig(name=self.name, provider=self.name, models=[self.name])
        super().__init__(channel, http)  # type: ignore[arg-type]  # never used: no HTTP here
        self.calls: list[Call] = []
        self.script: deque[list[Step]] = deque()
        self.started = 0
        self.closed = False

    def enqueue(self, *steps: Step) -> None:
        """Script the next call: its events in order; an exception is raised where it stands."""
        self.script.append(list(steps))

    async def start(self) -> None:
        self.started += 1

    async def aclose(self) -> None:
        self.closed = True

    def generate(self, request: ImageRequest, upstream_model: str) -> AsyncIterator[ProviderEvent]:
        return self._play(request, upstream_model)

    def edit(self, request: ImageRequest, upstream_model: str) -> AsyncIterator[ProviderEvent]:
        return self._play(request, upstream_model)

    async def _play(self, request: ImageRequest, upstream_model: str) -> AsyncIterator[ProviderEvent]:
        self.calls.append(Call(request, upstream_model))
        steps: list[Step] = self.script.popleft() if self.script else [result(request.n)]
        for step in steps:
            if isinstance(step, BaseException):
                raise step
            yield step


class FakeGenerateOnlyProvider(FakeProvider):
    """A provider whose channels may never be routed an edit (``can_edit = False``)."""

    name = "fake-generate-only"
    can_edit = False
