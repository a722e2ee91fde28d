"""Pages every signed-in key sees: playground, models, usage, request log (table, gallery, detail), tasks.

Every page reads the database directly through the log query modules; nothing here polls.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson
from fastapi import APIRouter
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from imagegate.console.charts import bar_chart
from imagegate.console.common import admin_only, days_param, log_filter, signed_in
from imagegate.console.render import SECURITY_HEADERS, page
from imagegate.console.running import gateway
from imagegate.db import log_queries, log_stats, request_details
from imagegate.errors import GatewayError
from imagegate.money import format_usd

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
GALLERY_SIZE = 48
QUALITIES = ("auto", "low", "medium", "high")
FORMATS = ("png", "jpeg", "webp")
BACKGROUNDS = ("auto", "opaque", "transparent")
PRESETS = ("auto", "1024x1024", "1536x1024", "1024x1536", "2048x2048", "2048x1152", "3840x2160", "2160x3840")


@router.get("/")
async def root() -> Response:
    return RedirectResponse("/console", status_code=307)


@router.get("/console")
async def home(request: Request) -> Response:
    viewer = await signed_in(request)
    return RedirectResponse(
        "/console/overview" if viewer.is_admin else "/console/playground", status_code=303
    )


def _models_for(request: Request, allowed: tuple[str, ...] | None) -> list[dict[str, Any]]:
    """The models this key may use, with what the playground needs to know about each."""
    catalog = gateway(request).catalogs.current
    prices = gateway(request).prices
    models = []
    for name, spec in sorted(catalog.models.items()):
        if allowed is not None and name not in allowed:
            continue
        rule_spec = catalog.models.get(spec.image_model or "") if spec.kind == "chat-image" else spec
        sizes = rule_spec.sizes if rule_spec is not None else "any"
        price = prices.price(spec.image_model if spec.kind == "chat-image" and spec.image_model else name)
        models.append(
            {
                "id": name,
                "kind": spec.kind,
                "sizes": sizes,
                "max_n": spec.max_n,
                "price": price.to_json() if price is not None else None,
            }
        )
    return models


@router.get("/console/playground")
async def playground(request: Request) -> Response:
    viewer = await signed_in(request)
    models = _models_for(request, viewer.principal.models)
    return page(
        request,
        "playground.html",
        viewer,
        models=models,
        # Read by the page's script from a JSON <script> block: "<" is escaped so no "</script>"
        # in a model name can end the block.
        models_json=Markup(orjson.dumps(models).decode().replace("<", "\\u003c")),
        presets=PRESETS,
        qualities=QUALITIES,
        formats=FORMATS,
        backgrounds=BACKGROUNDS,
    )


@router.get("/console/models")
async def models_page(request: Request) -> Response:
    viewer = await signed_in(request)
    return page(request, "models.html", viewer, models=_models_for(request, viewer.principal.models))


@router.get("/console/usage")
async def usage_page(request: Request) -> Response:
    viewer = await signed_in(request)
    days = days_param(request)
    where = log_filter(request, viewer, days=days)
    engine = gateway(request).engine
    daily = await log_stats.summed(engine, where, ("day",))
    models = by_requests(await log_stats.summed(engine, where, ("model",)))
    charts = [
        bar_chart("usage.by_day", [(d.label[5:], d.cost_micros / 1_000_000) for d in daily], 4),
        bar_chart("ov.images", [(d.label[5:], d.images) for d in daily]),
    ]
    return page(request, "usage.html", viewer, charts=charts, daily=daily, models=models, days=days)


@router.get("/console/usage.csv")
async def usage_csv(request: Request) -> Response:
    viewer = await signed_in(request)
    where = log_filter(request, viewer, days=days_param(request))
    rows = await log_stats.summed(gateway(request).engine, where, ("day", "key_id", "model"))
    header = [
        "day",
        "key_id",
        "model",
        "requests",
        "errors",
        "images",
        "input_tokens",
        "output_tokens",
        "cost_usd",
    ]
    lines = [
        [
            *r.keys,
            r.requests,
            r.errors,
            r.images,
            r.input_tokens,
            r.output_tokens,
            format_usd(r.cost_micros),
        ]
        for r in rows
    ]
    return _csv("usage.csv", header, lines)


@router.get("/console/logs")
async def logs_page(request: Request) -> Response:
    viewer = await signed_in(request)
    where = log_filter(request, viewer)
    engine = gateway(request).engine
    cursor = request.query_params.get("cursor") or None
    gallery = request.query_params.get("view") == "gallery"
    try:
        if gallery:
            result = await request_details.gallery(engine, where, limit=GALLERY_SIZE, cursor=cursor)
        else:
            result = await log_queries.list_logs(engine, where, limit=PAGE_SIZE, cursor=cursor)
    except GatewayError:
        result = log_queries.LogPage([], None)
    return page(
        request,
        "logs.html",
        viewer,
        rows=result.rows,
        next_cursor=result.next_cursor,
        gallery=gallery,
        where=where,
        status_filter=request.query_params.get("status", ""),
    )


@router.get("/console/logs.csv")
async def logs_csv(request: Request) -> Response:
    viewer = await signed_in(request)
    where = log_filter(request, viewer, days=days_param(request))
    engine = gateway(request).engine
    columns = [
        "id",
        "time",
        "endpoint",
        "key_id",
        "model",
        "channel",
        "n",
        "size",
        "quality",
        "status",
        "latency_ms",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "error_code",
        "error_message",
    ]
    lines: list[list[Any]] = []
    cursor = None
    # Bounded: an export is at most 100,000 rows, read in pages on the (time, id) index.
    while len(lines) < 100_000:
        result = await log_queries.list_logs(engine, where, limit=5000, cursor=cursor)
        for row in result.rows:
            cost = row.get("cost_micros")
            lines.append(
                [
                    row["id"],
                    row["time"].isoformat(),
                    row["endpoint"],
                    row["key_id"] or "",
                    row["model"] or "",
                    row["channel"] or "",
                    row["n"] or "",
                    row["size"] or "",
                    row["quality"] or "",
                    row["status"],
                    row["latency_ms"],
                    row["input_tokens"] or "",
                    row["output_tokens"] or "",
                    format_usd(cost) if cost is not None else "",
                    row["error_code"] or "",
                    row["error_message"] or "",
                ]
            )
        cursor = result.next_cursor
        if cursor is None:
            break
    return _csv("request-log.csv", columns, lines)


@router.get("/console/logs/{request_id}")
async def log_detail(request: Request, request_id: str) -> Response:
    viewer = await signed_in(request)
    engine = gateway(request).engine
    row = await log_queries.get_log(engine, request_id[:64])
    if row is None or (not viewer.is_admin and row["key_id"] != viewer.principal.key_id):
        return page(request, "error.html", viewer, status=404, message_key="not_found")
    detail = await request_details.get_detail(engine, request_id[:64])
    outputs = detail.outputs if detail else []
    images = len(outputs) or (row["n"] or 0 if row["status"] < 400 else 0)
    per_image = (row["cost_micros"] or 0) / images if images else None
    return page(request, "log_detail.html", viewer, row=row, detail=detail, per_image=per_image)


@router.get("/console/tasks")
async def tasks_page(request: Request) -> Response:
    viewer = await signed_in(request)
    # Read like every other console page, not through /v1: a page view is not an API request
    # and has no place in the request log.
    views, _ = await gateway(request).tasks.page(viewer.principal, status=None, limit=50, after=None)
    return page(request, "tasks.html", viewer, tasks=[view.to_wire() for view in views], available=True)


@router.get("/console/overview")
async def overview(request: Request) -> Response:
    viewer = await admin_only(request)
    days = days_param(request)
    where = log_filter(request, viewer, days=days)
    engine = gateway(request).engine
    daily = await log_stats.summed(engine, where, ("day",))
    models = by_requests(await log_stats.summed(engine, where, ("model",)))
    channels = await log_stats.summed(engine, where, ("channel",))
    failures = sorted(((c.label, c.errors) for c in channels if c.errors), key=lambda x: -x[1])
    day = [d.label[5:] for d in daily]
    charts = [
        bar_chart("ov.requests", list(zip(day, [d.requests for d in daily], strict=True))),
        bar_chart("ov.images", list(zip(day, [d.images for d in daily], strict=True))),
        bar_chart("ov.spend", list(zip(day, [d.cost_micros / 1e6 for d in daily], strict=True)), 2),
        bar_chart("ov.errors", list(zip(day, [d.error_rate for d in daily], strict=True)), 1),
        bar_chart("ov.latency", list(zip(day, [d.latency_ms for d in daily], strict=True))),
        bar_chart("ov.per_image", [(m.label, m.cost_per_image_micros / 1e6) for m in models[:12]], 4),
        bar_chart("ov.channel_failures", [(name, float(count)) for name, count in failures[:12]]),
    ]
    return page(request, "overview.html", viewer, charts=charts, days=days, models=models)


def by_requests(totals: list[log_stats.Totals]) -> list[log_stats.Totals]:
    return sorted(totals, key=lambda t: -t.requests)


def _csv(name: str, header: list[str], rows: list[list[Any]]) -> Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        # A cell starting with = + - @ would run as a formula in a spreadsheet.
        writer.writerow([f"'{c}" if isinstance(c, str) and c[:1] in "=+-@" else c for c in row])
    headers = {**SECURITY_HEADERS, "content-disposition": f'attachment; filename="{name}"'}
    return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)
