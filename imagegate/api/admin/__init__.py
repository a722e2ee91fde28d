"""The admin REST API under ``/admin`` (admin key only), with its own OpenAPI document and docs page.

    include_admin_api(app)    # routers, plus GET /admin/openapi.json and GET /admin/docs

Each resource is a thin router module (groups, keys, channels, prices, logs, usage) over a store;
`deps.admin_router` gives every route the admin-key check.
"""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import FastAPI
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
    async def admin_docs(request: Request) -> HTMLResponse:
        # A plain page drawn from the OpenAPI document: no CDN, works offline.
        if not schema:
            schema.update(admin_openapi_schema(request.app))
        return HTMLResponse(docs_page(schema), headers={"content-security-policy": "default-src 'none'"})


def docs_page(document: dict[str, Any]) -> str:
    """Every admin route with its summary, parameters and body schema, as escaped HTML."""
    parts = [
        "<!doctype html><meta charset=utf-8><title>imagegate admin API</title>",
        "<h1>imagegate admin API</h1>",
        f"<p>{escape(document.get('info', {}).get('description', ''))}</p>",
        f'<p>OpenAPI document: <a href="{OPENAPI_PATH}">{OPENAPI_PATH}</a></p>',
    ]
    for path, item in sorted(document.get("paths", {}).items()):
        for method, operation in item.items():
            parts.append(f"<h2><code>{escape(method.upper())} {escape(path)}</code></h2>")
            parts.append(f"<p>{escape(operation.get('summary', ''))}</p>")
            params = [p.get("name", "") for p in operation.get("parameters", [])]
            if params:
                parts.append(f"<p>parameters: <code>{escape(', '.join(params))}</code></p>")
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
            ref = body.get("schema", {}).get("$ref", "")
            if ref:
                parts.append(f"<p>body: <code>{escape(ref.rsplit('/', 1)[-1])}</code></p>")
    return "\n".join(parts)


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
