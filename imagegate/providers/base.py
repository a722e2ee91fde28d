"""The one base class every provider implements.

A provider turns an :class:`~imagegate.domain.ImageRequest` into events: zero or more
:class:`~imagegate.domain.PartialImage` previews, then exactly one
:class:`~imagegate.domain.ImageResult`. Non-streaming callers simply keep the last event, so
streaming and non-streaming share one code path.

Writing one::

    class EchoProvider(Provider):
        name = "echo"
        needs_key = False

        async def generate(self, request, upstream_model):
            yield ImageResult(images=[GeneratedImage(blob=ImageBlob(raw=MY_PNG))])

Providers raise :mod:`imagegate.errors` types (``UpstreamFailed``, ``UpstreamTimeout``,
``UpstreamRejected``…) and never put a channel secret into a message.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, ClassVar

from imagegate.domain import ImageRequest, ProviderEvent
from imagegate.errors import InvalidRequest

if TYPE_CHECKING:
    from imagegate.http import HttpClients
    from imagegate.settings import ChannelConfig


class Provider:
    #: The ``provider =`` value in a channel's config.
    name: ClassVar[str] = ""
    #: Emits partial images itself (otherwise a stream gets only the completed event).
    can_stream: ClassVar[bool] = False
    #: Accepts edits (input images, mask).
    can_edit: ClassVar[bool] = True
    #: A channel of this provider needs ``api_key``.
    needs_key: ClassVar[bool] = True

    def __init__(self, channel: ChannelConfig, http: HttpClients) -> None:
        self.channel = channel
        self.http = http

    def generate(self, request: ImageRequest, upstream_model: str) -> AsyncIterator[ProviderEvent]:
        raise NotImplementedError

    def edit(self, request: ImageRequest, upstream_model: str) -> AsyncIterator[ProviderEvent]:
        raise InvalidRequest(f"the {self.name} provider cannot edit images", param="model")

    def run(self, request: ImageRequest, upstream_model: str) -> AsyncIterator[ProviderEvent]:
        if request.operation == "edit":
            return self.edit(request, upstream_model)
        return self.generate(request, upstream_model)

    async def aclose(self) -> None:
        """Release what the provider holds (local models, sessions). Most hold nothing."""
