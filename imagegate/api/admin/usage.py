"""``GET /admin/usage``: requests, errors, images, tokens and cost per UTC day × key × model."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import Query
from pydantic import BaseModel
from starlette.requests import Request

from imagegate.api.admin.deps import admin_router, utc
from imagegate.api.deps import gateway
from imagegate.db.log_queries import LogFilter, UsageRow, usage
from imagegate.money import format_usd

router = admin_router(tags=["usage"])


class UsagePublic(BaseModel):
    day: str
    key_id: str | None
    model: str | None
    requests: int
    #: Requests that failed, before or after their first byte.
    errors: int
    #: Images of the requests that succeeded.
    images: int
    input_tokens: int
    output_tokens: int
    cost_usd: str

    @classmethod
    def from_row(cls, row: UsageRow) -> UsagePublic:
        return cls(
            day=row.day,
            key_id=row.key_id,
            model=row.model,
            requests=row.requests,
            errors=row.errors,
            images=row.images,
            input_tokens=row.input_tokens,
            output_tokens=row.output_tokens,
            cost_usd=format_usd(row.cost_micros),
        )


class UsageList(BaseModel):
    object: Literal["list"] = "list"
    data: list[UsagePublic]


@router.get("/usage", response_model=UsageList)
async def get_usage(
    request: Request,
    since: Annotated[datetime | None, Query(description="inclusive; ISO 8601, UTC when no offset")] = None,
    until: Annotated[datetime | None, Query(description="exclusive; ISO 8601, UTC when no offset")] = None,
    key_id: str | None = None,
    model: str | None = None,
) -> UsageList:
    where = LogFilter(key_id=key_id, model=model, since=utc(since), until=utc(until))
    rows = await usage(gateway(request).engine, where)
    return UsageList(data=[UsagePublic.from_row(row) for row in rows])
