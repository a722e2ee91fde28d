"""The one base class every provider implements, and the registry it fills.

A provider turns an :class:`~imagegate.domain.ImageRequest` into events: zero or more
:class:`~imagegate.domain.PartialImage` previews, then exactly one
:class:`~imagegate.domain.ImageResult`. Non-streaming callers simply keep the last event, so
streaming and non-streaming share one code path.

Adding a provider is one file in ``imagegate/providers/`` and its test. Defining the class
registers it under its ``name``: that name is what a channel's ``provider =`` says, and nothing
else lists it (``imagegate.providers.registry`` finds the module by scanning this package). A
worked example, an upstream that answers ``POST {base_url}/draw`` with ``{"png": "<base64>",
"usage": {...}}`` (``tests/providers/test_base_example.py`` runs it against a fake upstream)::

    # imagegate/providers/draw.py
    from imagegate.domain import GeneratedImage, ImageBlob, ImageResult
    from imagegate.providers.base import Provider
    from imagegate.providers.openai import openai_error
    from imagegate.providers.upstream import UpstreamClient, parse_usage


    class DrawProvider(Provider):
        name = "draw"  # [[channels]] provider = "draw"
        can_stream = False  # no partial images: a stream gets only the completed event
        can_edit = False  # never routed an edit (services/routing.py skips the channel)
        needs_key = True  # a channel without api_key stops the gateway at start-up

        def __init__(self, channel, http):
            super().__init__(channel, http)
            # Base URL, auth header, timeout, error mapping and secret scrubbing, shared.
            self.upstream = UpstreamClient(
                channel,
                http,
                default_base_url="https://draw.example/v1",
                headers={"Authorization": f"Bearer {channel.api_key}"},
                map_error=openai_error,  # the upstream answers errors in OpenAI's envelope
            )

        async def generate(self, request, upstream_model):
            body = await self.upstream.post_json("/draw", upstream_model, json={"prompt": request.prompt})
            image = GeneratedImage(blob=ImageBlob.from_b64(body["png"]))
            # parse_usage: impossible numbers are a 502 upstream_malformed, before any charge.
            yield ImageResult(images=[image], usage=parse_usage(body.get("usage")))

Its test starts a fake upstream from ``tests/fakes/`` that speaks the wire format, and a channel
``ChannelConfig(name="d", provider="draw", base_url=fake.base_url, api_key=fake.api_key)``.

A provider whose set-up is slow or blocking (loading model weights) does it in :meth:`start`,
which the provider pool awaits once, in a worker thread where it blocks. Providers raise
:mod:`imagegate.errors` types (``UpstreamFailed``, ``UpstreamTimeout``, ``UpstreamRejected``…);
errors built from an upstream's answer go through the upstream client, which scrubs secrets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, ClassVar

from imagegate.domain import ImageRequest, ProviderEvent
from imagegate.errors import InvalidRequest

if TYPE_CHECKING:
    from imagegate.http import HttpClients
    from imagegate.settings import ChannelConfig

#: Every provider class defined so far, by name (filled by `Provider.__init_subclass__`).
REGISTERED: dict[str, type[Provider]] = {}


class Provider:
    #: The ``provider =`` value in a channel's config; defining the class registers it.
    name: ClassVar[str] = ""
    #: Emits partial images itself (otherwise a stream gets only the completed event).
    can_stream: ClassVar[bool] = False
    #: Accepts edits (input images, mask); a channel whose provider cannot is never routed one.
    can_edit: ClassVar[bool] = True
    #: A channel of this provider needs ``api_key``: the catalog refuses one without it.
    needs_key: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.name:
            return  # an abstract helper class
        existing = REGISTERED.get(cls.name)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise TypeError(f"two provider classes are named '{cls.name}': {existing} and {cls}")
        REGISTERED[cls.name] = cls

    def __init__(self, channel: ChannelConfig, http: HttpClients) -> None:
        self.channel = channel
        self.http = http

    async def start(self) -> None:
        """Get ready to serve (load weights, open sessions); awaited once before the first request."""

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
