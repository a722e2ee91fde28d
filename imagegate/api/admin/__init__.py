"""The admin REST API under ``/admin`` (admin key only), with its own OpenAPI document and docs page.

    include_admin_api(app)    # routers, plus GET /admin/openapi.json and GET /admin/docs

Each resource is a thin router module (groups, keys, channels, prices, logs, usage) over a store;
`deps.admin_router` gives every route the admin-key check.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse

from imagegate import __version__
from imagegate.api.admin import channels, groups, keys, logs, prices, usage

ROUTERS = (groups.router, keys.router, channels.router, prices.router, logs.router, usage.router)
OPENAPI_PATH = "/admin/openapi.json"


def include_admin_api(app: FastAPI) -> None:
    for router in ROUTERS:
        app.include_router(router)
    schema: dict[str, Any] = {}

    # The document and the page are public: they describe the API, and the page needs no key to
    # load; every call it makes still needs the admin key ("Authorize").
    @app.get(OPENAPI_PATH, include_in_schema=False)
    async def admin_openapi(request: Request) -> JSONResponse:
        if not schema:
            schema.update(admin_openapi_schema(request.app))
        return JSONResponse(schema)

    @app.get("/admin/docs", include_in_schema=False)
    async def admin_docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=OPENAPI_PATH, title="imagegate admin API")


def admin_openapi_schema(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document of the ``/admin`` routes only."""
    document = get_openapi(
        title="imagegate admin API",
        version=__version__,
        description="Groups, keys, channels, prices, request logs and usage. Send the admin key "
        "as 'Authorization: Bearer …'. Errors use OpenAI's envelope.",
        routes=app.routes,
    )
    document["paths"] = {path: item for path, item in document["paths"].items() if path.startswith("/admin/")}
    return document
