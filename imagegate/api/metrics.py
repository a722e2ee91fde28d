"""GET /metrics: Prometheus text format, for an admin key (or anyone with IMAGEGATE_METRICS_PUBLIC=1)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from imagegate import metrics
from imagegate.api.deps import gateway, principal
from imagegate.errors import PermissionDenied
from imagegate.services.channel_health import Availability

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def get_metrics(request: Request) -> Response:
    gw = gateway(request)
    if not gw.settings.metrics_public:
        who = await principal(request)
        if not who.is_admin:
            raise PermissionDenied("Metrics need an admin key.", code="admin_required")
    _note_channel_states(request)
    body, content_type = await asyncio.to_thread(metrics.exposition)
    return Response(body, media_type=content_type.split(";")[0], headers={"Content-Type": content_type})


def _note_channel_states(request: Request) -> None:
    """channel_up from this worker's breakers, read at scrape time (they change without a request)."""
    gw = gateway(request)
    for channel in gw.catalog.channels:
        availability = gw.routing.health.availability(channel.name, channel.config.max_concurrency)
        metrics.set_channel_up(channel.name, availability not in _DOWN)


# A channel that takes no requests now: its breaker rests it, or it is disabled.
_DOWN = {Availability.RESTING, Availability.DISABLED}
