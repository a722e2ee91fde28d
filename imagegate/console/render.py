"""Page rendering: one Jinja2 environment (autoescaped), the security headers every page carries."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode, urlsplit

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from imagegate.console.i18n import LANG_COOKIE, pick_language, translator
from imagegate.console.session import Viewer
from imagegate.money import format_usd

# No inline script or style anywhere: every script is a same-origin module file.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("imagegate.console", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["usd"] = lambda micros: format_usd(int(micros or 0))
    env.filters["usd4"] = lambda micros: f"{Decimal(int(micros or 0)) / 1_000_000:.4f}"
    env.filters["local"] = local_url
    return env


def local_url(url: str | None) -> str:
    """A hosted image's link as a same-origin path (``/files/…``), whatever public URL made it."""
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.path.startswith("/files/"):
        return parts.path
    return url if url.startswith("data:image/") else ""


def language(request: Request) -> str:
    return pick_language(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))


def page(
    request: Request, template: str, viewer: Viewer | None, status: int = 200, **context: Any
) -> Response:
    lang = language(request)
    query = dict(request.query_params)

    def with_query(**changes: Any) -> str:
        merged = {**query, **{k: v for k, v in changes.items()}}
        clean = {k: v for k, v in merged.items() if v not in (None, "")}
        return request.url.path + ("?" + urlencode(clean) if clean else "")

    html = (
        environment()
        .get_template(template)
        .render(
            t=translator(lang),
            lang=lang,
            viewer=viewer,
            path=request.url.path,
            here=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
            with_query=with_query,
            **context,
        )
    )
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
