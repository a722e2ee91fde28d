"""What a request asked for and got (prompt, parameters, input and output images), for the console.

The request log keeps one narrow row per request for listings and sums; the text and image links
of a request live here, beside it, keyed by the same request id.

    await save_detail(engine, RequestDetail("req_…", time, "a red fox", {"size": "1024x1024"}, [], outputs))
    page = await gallery(engine, LogFilter(model="demo"), limit=48)
    one = await get_detail(engine, "req_…")
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.db.log_queries import LogFilter, LogPage, newest_first_page
from imagegate.db.request_logs import RequestLogRow
from imagegate.db.tables import RequestDetailRow

_MAX_PROMPT = 32_000


@dataclass(frozen=True, slots=True)
class RequestDetail:
    request_id: str
    time: datetime
    prompt: str | None
    params: dict[str, Any] = field(default_factory=dict)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)


async def save_detail(engine: AsyncEngine, detail: RequestDetail) -> None:
    values = {
        "request_id": detail.request_id,
        "time": detail.time,
        "prompt": detail.prompt[:_MAX_PROMPT] if detail.prompt else detail.prompt,
        "params": detail.params or None,
        "inputs": detail.inputs or None,
        "outputs": detail.outputs or None,
    }
    # The request log writer may have kept the pipeline's detail of the same request first: this
    # one (the console's, with its uploads stored and linked) replaces it.
    if engine.dialect.name == "postgresql":
        statement: Any = postgresql.insert(RequestDetailRow).values(**values)
    else:
        statement = sqlite.insert(RequestDetailRow).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=["request_id"], set_={name: statement.excluded[name] for name in values}
    )
    async with engine.begin() as connection:
        await connection.execute(statement)


async def delete_before(engine: AsyncEngine, cutoff: datetime) -> int:
    """Drop details older than ``cutoff`` (they follow the request log's retention)."""
    async with engine.begin() as connection:
        result = await connection.execute(delete(RequestDetailRow).where(RequestDetailRow.time < cutoff))
    return result.rowcount or 0


async def get_detail(engine: AsyncEngine, request_id: str) -> RequestDetail | None:
    query = select(RequestDetailRow.__table__).where(RequestDetailRow.request_id == request_id)
    async with engine.connect() as connection:
        row = (await connection.execute(query)).mappings().first()
    if row is None:
        return None
    return RequestDetail(
        request_id=row["request_id"],
        time=row["time"],
        prompt=row["prompt"],
        params=dict(row["params"] or {}),
        inputs=list(row["inputs"] or []),
        outputs=list(row["outputs"] or []),
    )


async def gallery(
    engine: AsyncEngine, where: LogFilter, *, limit: int = 48, cursor: str | None = None
) -> LogPage:
    """Requests that made images, newest first, each with its log columns, prompt and outputs."""
    query = (
        select(
            RequestDetailRow.request_id.label("id"),
            RequestDetailRow.time,
            RequestDetailRow.prompt,
            RequestDetailRow.outputs,
            RequestLogRow.key_id,
            RequestLogRow.model,
            RequestLogRow.size,
            RequestLogRow.status,
        )
        .join(RequestLogRow, RequestLogRow.id == RequestDetailRow.request_id)
        .where(*where.conditions(), RequestDetailRow.outputs.is_not(None))
    )
    return await newest_first_page(
        engine, query, RequestDetailRow.time, RequestDetailRow.request_id, limit=limit, cursor=cursor
    )
