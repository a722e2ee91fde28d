"""/v1/models: the models this key may use, in OpenAI's list shape."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from imagegate.api.deps import gateway, principal
from imagegate.providers.registry import ModelSpec

router = APIRouter()


def _model_object(spec: ModelSpec, created: int) -> dict[str, Any]:
    return {"id": spec.name, "object": "model", "created": created, "owned_by": "imagegate"}


@router.get("/v1/models")
async def list_models(request: Request) -> Response:
    who = await principal(request)
    gw = gateway(request)
    data = [
        _model_object(spec, gw.started_at)
        for name, spec in sorted(gw.catalog.models.items())
        if who.may_use(name)
    ]
    return Response(orjson.dumps({"object": "list", "data": data}), media_type="application/json")


@router.get("/v1/models/{model_id:path}")
async def retrieve_model(model_id: str, request: Request) -> Response:
    who = await principal(request)
    gw = gateway(request)
    spec = gw.catalog.models.get(model_id)
    if spec is None or not who.may_use(model_id):
        raise gw.catalog.unknown(model_id, who.may_use)
    return Response(orjson.dumps(_model_object(spec, gw.started_at)), media_type="application/json")
