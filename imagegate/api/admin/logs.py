"""``GET /admin/logs`` (filtered, newest first, cursor pages) and ``GET /admin/logs/{request_id}``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import BaseModel
from starlette.requests import Request

from imagegate.api.admin.deps import admin_router, not_found, utc
from imagegate.api.deps import gateway
from imagegate.db.log_queries import LogFilter, get_log, list_logs
from imagegate.money import format_usd

router = admin_router(tags=["logs"])

MAX_PAGE = 1000


class LogPublic(BaseModel):
    """One API request as the gateway saw it; ``id`` is the request's ``X-Request-Id``."""

    id: str
    time: datetime
    method: str
    endpoint: str
    key_id: str | None
    group: str | None
    model: str | None
    channel: str | None
    upstream_model: str | None
    upstream_request_id: str | None
    stream: bool | None
    n: int | None
    size: str | None
    quality: str | None
    user: str | None
    client_ip: str | None
    status: int
    latency_ms: float
    ttfb_ms: float | None
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: str | None
    error_type: str | None
    error_code: str | None
    error_message: str | None
    attempts: list[dict[str, Any]] | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> LogPublic:
        micros = row.pop("cost_micros")
        return cls(**row, cost_usd=None if micros is None else format_usd(micros))


class LogList(BaseModel):
    object: Literal["list"] = "list"
    data: list[LogPublic]
    has_more: bool
    #: Pass as ``cursor`` for the next (older) page; null on the last page.
    next_cursor: str | None


@router.get("/logs", response_model=LogList)
async def list_request_logs(
    request: Request,
    key_id: str | None = None,
    model: str | None = None,
    status: Annotated[str | None, Query(description="a code (429), a class (5xx), 'error' or 'ok'")] = None,
    since: Annotated[datetime | None, Query(description="inclusive; ISO 8601, UTC when no offset")] = None,
    until: Annotated[datetime | None, Query(description="exclusive; ISO 8601, UTC when no offset")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: str | None = None,
) -> LogList:
    where = LogFilter(key_id=key_id, model=model, status=status, since=utc(since), until=utc(until))
    page = await list_logs(gateway(request).engine, where, limit=limit, cursor=cursor)
    return LogList(
        data=[LogPublic.from_row(row) for row in page.rows],
        has_more=page.next_cursor is not None,
        next_cursor=page.next_cursor,
    )


@router.get("/logs/{request_id}", response_model=LogPublic)
async def get_request_log(request: Request, request_id: str) -> LogPublic:
    row = await get_log(gateway(request).engine, request_id)
    if row is None:
        raise not_found("request log", request_id)
    return LogPublic.from_row(row)
