"""Choosing the channel that runs a request.

:class:`ChannelRouter` is the one place that decides which channel(s) a request goes to and
what happens when one fails. It yields ``(channel, event)`` pairs so the caller knows which
channel produced the result (for downloads and the log).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from imagegate.domain import ImageRequest, ProviderEvent
from imagegate.observability import note
from imagegate.providers.registry import Catalog, Channel


class ChannelRouter:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    async def run(self, request: ImageRequest) -> AsyncIterator[tuple[Channel, ProviderEvent]]:
        channel = self.catalog.pick_channel(request.model)
        note(channel=channel.name)
        upstream_model = channel.config.upstream_model(request.model)
        async for event in channel.provider.run(request, upstream_model):
            yield channel, event
