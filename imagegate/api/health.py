"""/healthz (the process answers) and /readyz (what a request needs works: take traffic?).

/readyz checks, each within ``CHECK_TIMEOUT_S``: the database answers; the image store can be
written and has at least ``IMAGEGATE_STORAGE_MIN_FREE_MB`` free (a full disk would otherwise
fail every generation after its upstream call); Redis answers when it is configured. 503 names
the checks that failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from imagegate.api.deps import gateway
from imagegate.db.engine import ping
from imagegate.settings import Settings
from imagegate.storage.base import ImageStore

router = APIRouter()

CHECK_TIMEOUT_S = 3.0
_MB = 1024 * 1024


@router.get("/healthz")
async def healthz() -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


@router.get("/readyz")
async def readyz(request: Request) -> Response:
    gw = gateway(request)
    checks: dict[str, Awaitable[None]] = {
        "database": ping(gw.engine),
        "storage": storage_ready(gw.store, gw.settings.storage_min_free_mb),
    }
    if gw.settings.redis_url:
        checks["redis"] = redis_ready(gw.settings)
    results = await asyncio.gather(*(_outcome(check) for check in checks.values()))
    outcome = dict(zip(checks, results, strict=True))
    ready = all(value == "ok" for value in outcome.values())
    body = {"status": "ok" if ready else "unavailable", "checks": outcome}
    return Response(orjson.dumps(body), status_code=200 if ready else 503, media_type="application/json")


class NotReady(Exception):
    """A check failed for a reason worth saying in the probe's answer."""


async def storage_ready(store: ImageStore, min_free_mb: float) -> None:
    await store.check()
    free = await store.free_bytes()
    if free is not None and free < min_free_mb * _MB:
        raise NotReady(f"{free / _MB:.0f} MB free, below the {min_free_mb:g} MB minimum")


async def redis_ready(settings: Settings) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(
        settings.redis_url, socket_timeout=CHECK_TIMEOUT_S, socket_connect_timeout=CHECK_TIMEOUT_S
    )
    try:
        await client.ping()
    finally:
        await client.aclose()


async def _outcome(check: Awaitable[None]) -> str:
    try:
        await asyncio.wait_for(check, CHECK_TIMEOUT_S)
    except NotReady as exc:
        return f"error: {exc}"
    except TimeoutError:
        return f"error: no answer in {CHECK_TIMEOUT_S:g}s"
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"
