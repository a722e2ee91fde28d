"""Choosing the channel that runs a request, and failing over when it breaks.

:class:`ChannelRouter` is the one place that decides which channel(s) a request goes to and
what happens when one fails. It yields ``(channel, event)`` pairs so the caller knows which
channel produced the result (for downloads and the log).

Order: the lowest priority tier first, a weighted random order inside a tier. An attempt that
fails in a retryable way (connection error, timeout, the upstream's 429 or 5xx, a disabled
credential) *before its first event* moves to the next channel, up to ``max_attempts`` in all.
Once an event has been yielded, bytes may have reached the client, so errors are re-raised.

Usage::

    router = ChannelRouter(catalog, ChannelHealth.from_settings(settings), max_attempts=3)
    async for channel, event in router.run(request, record):
        ...
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator
from contextlib import suppress
from typing import Protocol

from imagegate import tracing
from imagegate.domain import ImageRequest, ImageResult, ProviderEvent
from imagegate.errors import (
    GatewayError,
    InvalidRequest,
    NoHealthyChannel,
    RateLimited,
    UpstreamFailed,
    UpstreamRejected,
    UpstreamTimeout,
)
from imagegate.observability import RequestRecord
from imagegate.providers.registry import Catalog, Channel
from imagegate.services.channel_health import Availability, ChannelHealth, Lease
from imagegate.settings import Settings

logger = logging.getLogger("imagegate.routing")


class CatalogSource(Protocol):
    """A catalog snapshot (its own source) or the live catalog service: read once per request."""

    @property
    def current(self) -> Catalog: ...


# Failures that no wait fixes: the channel is disabled, and the request moves on.
_DISABLING_CODES = {
    "upstream_auth_failed": "the upstream rejected the channel's credentials",
    "insufficient_quota": "the upstream reports the channel's quota or credit is exhausted",
}
# The upstream failed in a way that says nothing about another channel serving the model.
_NOT_RETRYABLE_CODES = {"upstream_model_not_found"}


def failure_kind(error: GatewayError) -> str:
    """``disable``, ``retry`` (the channel's fault) or ``final`` (the request's fault, or a config one)."""
    if error.code in _DISABLING_CODES and isinstance(error, UpstreamFailed | RateLimited):
        return "disable"
    if isinstance(error, UpstreamTimeout | RateLimited):
        return "retry"
    if isinstance(error, UpstreamFailed) and error.code not in _NOT_RETRYABLE_CODES:
        return "retry"
    return "final"


class ChannelRouter:
    def __init__(
        self,
        catalog: CatalogSource,
        health: ChannelHealth | None = None,
        *,
        max_attempts: int = 3,
        rng: random.Random | None = None,
    ) -> None:
        self.catalogs = catalog
        self.health = health or ChannelHealth()
        self.max_attempts = max_attempts
        self.rng = rng or random.Random()

    @property
    def catalog(self) -> Catalog:
        """The current snapshot of the models and channels."""
        return self.catalogs.current

    @classmethod
    def from_settings(cls, catalog: CatalogSource, settings: Settings) -> ChannelRouter:
        return cls(catalog, ChannelHealth.from_settings(settings), max_attempts=settings.route_max_attempts)

    async def run(
        self, request: ImageRequest, record: RequestRecord | None = None
    ) -> AsyncIterator[tuple[Channel, ProviderEvent]]:
        """The events of the first channel that delivers; each attempt is added to ``record``."""
        channels = self.catalog.channels_for(request.model)  # one snapshot for the whole request
        if not channels:
            raise NoHealthyChannel(f"No channel serves the model '{request.model}'.")
        if request.operation == "edit":  # capability flag: a channel that cannot edit is never picked
            channels = [channel for channel in channels if channel.can_edit]
            if not channels:
                raise InvalidRequest(
                    f"No channel of the model '{request.model}' can edit images.", param="model"
                )
        tried: set[str] = set()
        last_error: GatewayError | None = None
        while len(tried) < self.max_attempts:
            picked = await self._acquire(request.model, [c for c in channels if c.name not in tried])
            if picked is None:
                break
            channel, lease = picked
            tried.add(channel.name)
            upstream_model = channel.config.upstream_model(request.model)
            if record is not None:
                record.channel, record.upstream_model = channel.name, upstream_model
            started = time.monotonic()
            yielded = False
            # route -> routing attempt -> provider, in traces (a no-op without the otel extra).
            attempt = tracing.start("routing.attempt", channel=channel.name, model=request.model)
            call = attempt.child("provider", provider=channel.provider.name, upstream_model=upstream_model)
            failure: str | None = None
            events = channel.provider.run(request, upstream_model)
            try:
                async for event in events:
                    if isinstance(event, ImageResult):
                        lease.succeed()
                        _record_attempt(record, channel, None, started)
                    yielded = True
                    yield channel, event
                    del event  # one multi-megabyte event held at a time
                if not yielded:
                    raise UpstreamFailed(
                        f"channel {channel.name}: the upstream finished without an image",
                        code="upstream_bad_response",
                    )
                return
            except GatewayError as error:
                failure = error.code or error.type
                _record_attempt(record, channel, failure, started)
                if not self._settle(lease, error) or yielded:
                    raise
                last_error = error
                logger.info("channel %s failed (%s); trying another channel", channel.name, error.code)
            finally:
                lease.release()
                aclose = getattr(events, "aclose", None)
                if aclose is not None:
                    await aclose()
                call.end(failure)
                attempt.end(failure)
        if last_error is not None:
            raise last_error
        raise NoHealthyChannel(self._unavailable_message(request.model, channels))

    def _settle(self, lease: Lease, error: GatewayError) -> bool:
        """Report an attempt's failure to the channel's health; True when another channel may retry."""
        kind = failure_kind(error)
        if kind == "disable":
            lease.disable(f"{_DISABLING_CODES[error.code or '']} ({error.code})")
        elif kind == "retry":
            lease.fail(error.code or error.type, error.message)
        elif isinstance(error, UpstreamRejected):
            lease.alive()  # the upstream answered; the request itself was the problem
        return kind != "final"

    # -- choosing -----------------------------------------------------------------------------

    def order(self, channels: list[Channel]) -> list[Channel]:
        """Tiers by ascending priority; inside a tier, a weighted random order."""
        ordered: list[Channel] = []
        for priority in sorted({channel.config.priority for channel in channels}):
            tier = [channel for channel in channels if channel.config.priority == priority]
            while len(tier) > 1:
                pick = self.rng.choices(tier, weights=[c.config.weight for c in tier])[0]
                tier.remove(pick)
                ordered.append(pick)
            ordered.extend(tier)
        return ordered

    async def _acquire(self, model: str, candidates: list[Channel]) -> tuple[Channel, Lease] | None:
        """The first channel in order that takes the attempt now; waits while all usable ones are full."""
        order = self.order(candidates)
        deadline: float | None = None
        while True:
            for channel in order:
                lease = self.health.try_acquire(channel.name, channel.config.max_concurrency)
                if lease is not None:
                    return channel, lease
            full = [
                channel
                for channel in order
                if self.health.availability(channel.name, channel.config.max_concurrency) is Availability.FULL
            ]
            if not full:
                return None
            now = asyncio.get_running_loop().time()
            if deadline is None:
                deadline = now + max(channel.config.timeout_s for channel in full)
            if now >= deadline:
                raise NoHealthyChannel(
                    f"Every channel for the model '{model}' stayed busy for too long; try again later."
                )
            with suppress(TimeoutError):
                await self.health.wait_for_change(deadline - now)

    def _unavailable_message(self, model: str, channels: list[Channel]) -> str:
        reasons = [self.health.describe(c.name, c.config.max_concurrency) for c in channels]
        return f"No healthy channel for the model '{model}' right now: {'; '.join(reasons)}."


def _record_attempt(
    record: RequestRecord | None, channel: Channel, error: str | None, started: float
) -> None:
    if record is not None:
        ms = round((time.monotonic() - started) * 1000, 1)
        record.attempts.append({"channel": channel.name, "error": error, "ms": ms})
