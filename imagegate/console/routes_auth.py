"""Sign-in, sign-out and the language switch."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from imagegate.console.i18n import LANG_COOKIE, LANGUAGES
from imagegate.console.render import page
from imagegate.console.running import gateway
from imagegate.console.session import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    SignInThrottle,
    csrf_ok,
    current_viewer,
    new_csrf,
    set_cookie,
)
from imagegate.db.console_sessions import SESSION_TTL
from imagegate.errors import GatewayError

router = APIRouter(include_in_schema=False)


def _throttle(request: Request) -> SignInThrottle:
    state = request.app.state
    if not hasattr(state, "console_sign_in_throttle"):
        state.console_sign_in_throttle = SignInThrottle()
    throttle: SignInThrottle = state.console_sign_in_throttle
    return throttle


def _login_page(request: Request, error: str | None = None, status: int = 200) -> Response:
    csrf = new_csrf()
    response = page(request, "login.html", None, status=status, csrf=csrf, error=error)
    set_cookie(request, response, LOGIN_CSRF_COOKIE, csrf, max_age=3600)
    return response


@router.get("/console/login")
async def login_form(request: Request) -> Response:
    if await current_viewer(request) is not None:
        return RedirectResponse("/console", status_code=303)
    return _login_page(request)


@router.post("/console/login")
async def login(request: Request) -> Response:
    form = await request.form()
    client = request.client.host if request.client else "unknown"
    throttle = _throttle(request)
    if throttle.blocked(client):
        return _login_page(request, "login.too_many", status=429)
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    given = form.get("csrf")
    if not expected or not csrf_ok(expected, given if isinstance(given, str) else None):
        return _login_page(request, "login.bad_form", status=403)
    key = form.get("key")
    secret = key.strip() if isinstance(key, str) else ""
    gw = gateway(request)
    principal = None
    if secret.startswith("sk-") or (gw.settings.admin_key and secret == gw.settings.admin_key):
        try:
            principal = await gw.auth.authenticate(f"Bearer {secret}", client, count=False)
        except GatewayError:
            principal = None
    if principal is None:
        throttle.failed(client)
        return _login_page(request, "login.bad_key", status=401)
    token, _ = await gw.auth.sessions.create(principal.key_id)
    response = RedirectResponse("/console", status_code=303)
    set_cookie(request, response, SESSION_COOKIE, token, max_age=int(SESSION_TTL.total_seconds()))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


@router.post("/console/logout")
async def logout(request: Request) -> Response:
    viewer = await current_viewer(request)
    form = await request.form()
    given = form.get("csrf")
    if viewer is not None and csrf_ok(viewer.csrf, given if isinstance(given, str) else None):
        gw = gateway(request)
        await gw.auth.sessions.delete(viewer.token)
        gw.auth.forget()
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/console/lang/{lang}")
async def switch_language(request: Request, lang: str) -> Response:
    target = request.query_params.get("next", "/console")
    # Only a path on this console: never an open redirect.
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/console"):
        target = "/console"
    response = RedirectResponse(target, status_code=303)
    if lang in LANGUAGES:
        set_cookie(request, response, LANG_COOKIE, lang, max_age=365 * 24 * 3600)
    return response
