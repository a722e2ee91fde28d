"""The web console at ``/console`` (SPEC §11): server-rendered pages, small ES modules, no CDN.

    mount_console(app)

Pages read the database through the request-log query modules; the playground and the admin
buttons call the gateway's own ``/v1`` and ``/admin`` API through a same-origin pass-through
(`passthrough`), so the browser holds a session cookie and never the key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from imagegate.console import routes_admin, routes_auth, routes_user
from imagegate.console.common import Redirect
from imagegate.console.passthrough import PREFIX, PassThrough
from imagegate.db import log_stats, request_details

logger = logging.getLogger("imagegate.console")


ROLL_UP_EVERY_S = 600.0


async def _roll_up_forever(app: FastAPI) -> None:
    """Sum finished days of the request log (see `log_stats.roll_up`) and drop request details
    past the log's retention, in the background."""
    while True:
        gateway = getattr(app.state, "gateway", None)
        if gateway is not None:
            try:
                await log_stats.roll_up(gateway.engine)
                days = gateway.settings.log_retention_days
                if days > 0:
                    await request_details.delete_before(
                        gateway.engine, datetime.now(UTC) - timedelta(days=days)
                    )
            except Exception:
                logger.exception("summing the request log by day failed; will retry")
        await asyncio.sleep(ROLL_UP_EVERY_S)


def _with_roll_up(app: FastAPI) -> None:
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(owner: Any) -> AsyncIterator[Any]:
        async with inner(owner) as state:
            task = asyncio.create_task(_roll_up_forever(app), name="imagegate-log-roll-up")
            try:
                yield state
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app.router.lifespan_context = lifespan


def mount_console(app: FastAPI) -> None:
    async def redirect(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Redirect)
        return exc.response

    app.add_exception_handler(Redirect, redirect)
    _with_roll_up(app)
    app.mount(PREFIX, PassThrough())
    app.mount(
        "/console/static", StaticFiles(packages=[("imagegate.console", "static")]), name="console-static"
    )
    for module in (routes_auth, routes_user, routes_admin):
        app.include_router(module.router)
