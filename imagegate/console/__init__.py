"""The web console at ``/console`` (SPEC §11): server-rendered pages, small ES modules, no CDN.

    mount_console(app)

Pages read the database through the request-log query modules; the playground and the admin
buttons call the gateway's own ``/v1`` and ``/admin`` API through a same-origin pass-through
(`passthrough`), so the browser holds a session cookie and never the key.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from imagegate.console import routes_admin, routes_auth, routes_user
from imagegate.console.common import Redirect
from imagegate.console.passthrough import PREFIX, PassThrough


def mount_console(app: FastAPI) -> None:
    async def redirect(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Redirect)
        return exc.response

    app.add_exception_handler(Redirect, redirect)
    app.mount(PREFIX, PassThrough())
    app.mount(
        "/console/static", StaticFiles(packages=[("imagegate.console", "static")]), name="console-static"
    )
    for module in (routes_auth, routes_user, routes_admin):
        app.include_router(module.router)
