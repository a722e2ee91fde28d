"""API keys → principals, with a short in-process cache so the hot path rarely touches the DB.

Two kinds of admin: the configured ``IMAGEGATE_ADMIN_KEY`` and keys stored with ``admin: true``.
A console session token (``igs_…``, see `imagegate.db.console_sessions`) stands for the key that
signed in: the console's same-origin pass-through sends it, so the browser never holds the key.

Per request, after the (cached) lookup: the key must be enabled and unexpired (401), called from
an allowed IP (403), and under its requests-per-minute limit (429). Balances are never cached:
the ledger checks them in the database when a request holds its cost.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime

from imagegate.db.console_sessions import SessionStore, is_session_token
from imagegate.db.key_values import ApiKey
from imagegate.db.keys import KeyStore, hash_key
from imagegate.domain import Principal
from imagegate.errors import AuthenticationFailed, PermissionDenied
from imagegate.limits import RateLimiter, enforce
from imagegate.ttl_cache import TtlCache

ADMIN = Principal(key_id="admin", name="admin", is_admin=True)
_CACHE_LIMIT = 10_000

_Entry = tuple[ApiKey | None, Principal | None]


class Authenticator:
    """Checks ``Authorization: Bearer sk-…``.

    Lookups (hits and misses alike) are cached for ``ttl_s`` seconds: at thousands of requests
    a second one DB read per key per second is plenty, and a revoked or disabled key stops
    working within that time in every process.
    """

    def __init__(
        self, keys: KeyStore, admin_key: str, ttl_s: float, limiter: RateLimiter | None = None
    ) -> None:
        self.keys = keys
        self.admin_key = admin_key.encode()
        self.limiter = limiter
        self.sessions = SessionStore(keys.engine)
        self._cache: TtlCache[str, _Entry] = TtlCache(ttl_s, max_entries=_CACHE_LIMIT)

    async def authenticate(
        self, authorization: str | None, client_ip: str | None = None, *, count: bool = True
    ) -> Principal:
        """The caller's principal; ``client_ip`` is checked against the key's allowlist.

        ``count=False`` checks the key without spending a request of its per-minute limit (the
        console's page views: they are not API calls).
        """
        secret = _bearer_token(authorization)
        if self.admin_key and hmac.compare_digest(secret.encode(), self.admin_key):
            return ADMIN
        if is_session_token(secret):
            key, principal = await self._session(secret)
            if principal is ADMIN:
                return ADMIN
        else:
            key, principal = await self._cached(secret)
        if key is None or principal is None:
            raise AuthenticationFailed("Incorrect API key provided, or the key has been revoked.")
        if not key.enabled:
            raise AuthenticationFailed("This API key is disabled.", code="api_key_disabled")
        if key.expires_at is not None and key.expired(datetime.now(UTC)):
            raise AuthenticationFailed(
                f"This API key expired at {key.expires_at.isoformat()}.", code="api_key_expired"
            )
        if key.ip_allowlist is not None and not key.allows_ip(client_ip):
            raise PermissionDenied(
                f"This API key may not be used from the address {client_ip or 'unknown'}.",
                code="ip_not_allowed",
            )
        if self.limiter is not None and count:
            await enforce(self.limiter, principal.key_id, principal.rpm)
        return principal

    async def _cached(self, secret: str) -> _Entry:
        async def load() -> _Entry:
            key = await self.keys.authenticate(secret)
            return key, None if key is None else principal_for(key)

        return await self._cache.get(hash_key(secret), load)

    async def _session(self, token: str) -> _Entry:
        return await self._cache.get("session:" + hash_key(token), lambda: self._load_session(token))

    async def _load_session(self, token: str) -> _Entry:
        key: ApiKey | None = None
        principal: Principal | None = None
        session = await self.sessions.get(token)
        if session is not None and session.key_id == ADMIN.key_id:
            # The configured admin key signed in; it counts only while it is still configured.
            principal = ADMIN if self.admin_key else None
        elif session is not None:
            key = await self.keys.get(session.key_id)
            if key is not None and key.active:
                principal = principal_for(key)
            else:
                key = None
        return key, principal

    def forget(self) -> None:
        """Drop cached lookups (after a key is revoked or changed in this process)."""
        self._cache.clear()


def principal_for(key: ApiKey) -> Principal:
    return Principal(
        key_id=key.id,
        name=key.name,
        models=key.effective_models(),
        group=key.group.name if key.group is not None else None,
        price_multiplier=key.price_multiplier,
        rpm=key.effective_rpm,
        billed=not key.unlimited,
        response_format=key.effective_response_format,
        is_admin=key.admin,
    )


def _bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise AuthenticationFailed(
            "You didn't provide an API key. Send it as 'Authorization: Bearer sk-...'.",
            code="missing_api_key",
        )
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationFailed("Malformed Authorization header: expected 'Bearer sk-...'.")
    return token
