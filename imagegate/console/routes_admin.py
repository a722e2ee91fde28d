"""Admin pages: keys, groups, channels, prices. They read through the admin API in-process;
their buttons call it through the console pass-through (see ``static/api-forms.js``)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from imagegate.console.common import admin_only
from imagegate.console.passthrough import call_json
from imagegate.console.render import page
from imagegate.console.running import gateway
from imagegate.console.session import csrf_ok

router = APIRouter(include_in_schema=False)


def _data(status: int, body: object) -> list[dict[str, object]]:
    if status == 200 and isinstance(body, dict) and isinstance(body.get("data"), list):
        return [item for item in body["data"] if isinstance(item, dict)]
    return []


@router.get("/console/keys")
async def keys_page(request: Request) -> Response:
    viewer = await admin_only(request)
    keys = _data(*await call_json(request, viewer, "GET", "/admin/keys"))
    groups = _data(*await call_json(request, viewer, "GET", "/admin/groups"))
    return page(request, "keys.html", viewer, keys=keys, groups=groups)


@router.get("/console/groups")
async def groups_page(request: Request) -> Response:
    viewer = await admin_only(request)
    groups = _data(*await call_json(request, viewer, "GET", "/admin/groups"))
    return page(request, "groups.html", viewer, groups=groups)


@router.get("/console/channels")
async def channels_page(request: Request) -> Response:
    viewer = await admin_only(request)
    channels = _data(*await call_json(request, viewer, "GET", "/admin/channels"))
    return page(request, "channels.html", viewer, channels=channels)


@router.post("/console/channels/{name}/{action}")
async def channel_switch(request: Request, name: str, action: str) -> Response:
    """Take a channel out of rotation or put it back (this process's routing state)."""
    viewer = await admin_only(request)
    form = await request.form()
    given = form.get("csrf")
    if not csrf_ok(viewer.csrf, given if isinstance(given, str) else None):
        return page(request, "error.html", viewer, status=403, message_key="login.bad_form")
    routing = gateway(request).routing
    if action not in ("enable", "disable") or all(c.name != name for c in routing.catalog.channels):
        return page(request, "error.html", viewer, status=404, message_key="not_found")
    if action == "disable":
        routing.health.disable(name, f"disabled by {viewer.principal.name} in the console")
    else:
        routing.health.enable(name)
    return RedirectResponse("/console/channels", status_code=303)


@router.get("/console/prices")
async def prices_page(request: Request) -> Response:
    viewer = await admin_only(request)
    prices = _data(*await call_json(request, viewer, "GET", "/admin/prices"))
    return page(request, "prices.html", viewer, prices=prices)
