"""/admin/channels: every channel's routing state, and a real test request on one of them.

``GET /admin/channels`` lists each channel's config and live state (in-flight requests, breaker,
failures, disabled reason, last error and success). ``POST /admin/channels/{name}/test`` sends a
tiny real request through the channel (body ``{"model": "..."}`` optional); a success re-enables
a disabled channel. Both need the admin key.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from imagegate.api.deps import gateway, principal
from imagegate.errors import InvalidRequest, PermissionDenied
from imagegate.providers.registry import Channel
from imagegate.services.channel_check import check_channel
from imagegate.services.channel_health import ChannelHealth

router = APIRouter()


async def require_admin(request: Request) -> None:
    who = await principal(request)
    if not who.is_admin:
        # Same message and code as the rest of /admin (imagegate.api.admin.deps).
        raise PermissionDenied("The admin API needs the admin key.", code="admin_key_required")


def channel_view(channel: Channel, health: ChannelHealth) -> dict[str, Any]:
    config = channel.config
    return {
        "name": config.name,
        "provider": config.provider,
        "models": list(config.models),
        "priority": config.priority,
        "weight": config.weight,
        "timeout_s": config.timeout_s,
        "max_concurrency": config.max_concurrency,
        **health.snapshot(config.name),
    }


@router.get("/admin/channels")
async def list_channels(request: Request) -> Response:
    await require_admin(request)
    routing = gateway(request).routing
    data = [channel_view(channel, routing.health) for channel in routing.catalog.channels]
    return _json({"object": "list", "data": data})


@router.post("/admin/channels/{name}/test")
async def test_channel(name: str, request: Request) -> Response:
    await require_admin(request)
    model = _model_from(await request.body())
    result = await check_channel(gateway(request).routing, name, model)
    return _json(result.to_dict())


def _model_from(body: bytes) -> str | None:
    if not body.strip():
        return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest('The body must be JSON, e.g. {"model": "gpt-image-1"}.') from exc
    model = data.get("model") if isinstance(data, dict) else None
    if model is not None and not isinstance(model, str):
        raise InvalidRequest("'model' must be a string.", param="model")
    return model


def _json(body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")
