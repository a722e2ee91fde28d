"""Model prices: ``GET /admin/prices``, ``GET|PUT|DELETE /admin/prices/{model}``.

A price set here beats the config file's and the shipped default, in every request from the
next one on; ``DELETE`` goes back to them. Shapes as in the config (SPEC §7)::

    PUT /admin/prices/gpt-image-1  {"price": {"per_image": {"1024x1024/high": 0.167, "default": 0.04}}}
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict
from starlette.requests import Request

from imagegate.api.admin.deps import admin_router, invalid, not_found
from imagegate.api.deps import gateway

router = admin_router(tags=["prices"])


class PriceSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: ``{"per_token": {...}}`` (USD per 1M tokens) and/or ``{"per_image": {...}}`` (USD per image).
    price: dict[str, Any]


class PricePublic(BaseModel):
    object: Literal["model_price"] = "model_price"
    model: str
    price: dict[str, Any]
    #: Where the effective price comes from: ``db`` (set here), ``config`` or ``default``.
    source: str
    #: When it was set here (``db`` prices only).
    updated_at: datetime | None = None


class PriceList(BaseModel):
    object: Literal["list"] = "list"
    data: list[PricePublic]


ModelName = Annotated[str, Path(description="the public model name")]


def _effective(request: Request) -> dict[str, PricePublic]:
    prices = gateway(request).prices.effective()
    return {
        model: PricePublic(
            model=model, price=info.price.to_json(), source=info.source, updated_at=info.updated_at
        )
        for model, info in sorted(prices.items())
    }


@router.get("/prices", response_model=PriceList)
async def list_prices(request: Request) -> PriceList:
    return PriceList(data=list(_effective(request).values()))


@router.get("/prices/{model:path}", response_model=PricePublic)
async def get_price(request: Request, model: ModelName) -> PricePublic:
    found = _effective(request).get(model)
    if found is None:
        raise not_found("price", model)
    return found


@router.put("/prices/{model:path}", response_model=PricePublic)
async def set_price(request: Request, model: ModelName, body: PriceSet) -> PricePublic:
    try:
        await gateway(request).prices.set_price(model, body.price)
    except ValueError as exc:
        raise invalid(exc, param="price") from exc
    return await get_price(request, model)


@router.delete("/prices/{model:path}", response_model=PricePublic | None)
async def delete_price(request: Request, model: ModelName) -> PricePublic | None:
    """Drop the price set here; returns the price now in force (config or default), if any."""
    if not await gateway(request).prices.delete_price(model):
        raise not_found("price override", model)
    return _effective(request).get(model)
