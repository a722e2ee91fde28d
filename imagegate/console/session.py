"""Who is looking at the console: the session cookie, its CSRF token, and sign-in throttling.

The cookie holds a random session token (``igs_…``), never the key. The token maps to the key's
id in the database, and the authenticator re-checks that key on every use, so revoking a key
signs its browsers out.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import deque
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from imagegate.console.running import gateway
from imagegate.domain import Principal
from imagegate.errors import GatewayError

SESSION_COOKIE = "imagegate_session"
#: The sign-in form's CSRF token (double-submit): there is no session yet to keep it in.
LOGIN_CSRF_COOKIE = "imagegate_login_csrf"


@dataclass(frozen=True, slots=True)
class Viewer:
    principal: Principal
    token: str
    csrf: str

    @property
    def is_admin(self) -> bool:
        return self.principal.is_admin

    @property
    def key_filter(self) -> str | None:
        """The key whose requests this viewer may see; None: everyone's (admins)."""
        return None if self.is_admin else self.principal.key_id


async def current_viewer(request: Request) -> Viewer | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    gw = gateway(request)
    session = await gw.auth.sessions.get(token)
    if session is None:
        return None
    try:
        client = request.client.host if request.client else None
        principal = await gw.auth.authenticate(f"Bearer {token}", client, count=False)
    except GatewayError:
        return None
    return Viewer(principal=principal, token=token, csrf=session.csrf)


def secure_cookies(request: Request) -> bool:
    """Cookies get ``Secure`` when the browser reached us over https (directly or via a proxy)."""
    if request.url.scheme == "https":
        return True
    return request.headers.get("x-forwarded-proto", "").lower() == "https"


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request),
    )


def csrf_ok(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


def new_csrf() -> str:
    return secrets.token_urlsafe(24)


class SignInThrottle:
    """At most ``limit`` failed sign-ins per client address per ``window_s`` (in this process);
    past that, every attempt from the address is refused until the window moves on."""

    def __init__(self, limit: int = 10, window_s: float = 60.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._attempts: dict[str, deque[float]] = {}

    def blocked(self, address: str) -> bool:
        attempts = self._attempts.get(address)
        if not attempts:
            return False
        now = time.monotonic()
        while attempts and attempts[0] <= now - self.window_s:
            attempts.popleft()
        return len(attempts) >= self.limit

    def failed(self, address: str) -> None:
        if len(self._attempts) > 10_000:
            self._attempts.clear()
        self._attempts.setdefault(address, deque()).append(time.monotonic())
