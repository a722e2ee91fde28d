"""API keys → principals, with a short in-process cache so the hot path rarely touches the DB."""

from __future__ import annotations

import hmac
import time

from imagegate.db.keys import KeyStore, hash_key
from imagegate.domain import Principal
from imagegate.errors import AuthenticationFailed

ADMIN = Principal(key_id="admin", name="admin", is_admin=True)
_CACHE_LIMIT = 10_000


class Authenticator:
    """Checks ``Authorization: Bearer sk-…``.

    Lookups (hits and misses alike) are cached for ``ttl_s`` seconds: at thousands of requests
    a second one DB read per key per second is plenty, and a revoked key stops working within
    that time in every process.
    """

    def __init__(self, keys: KeyStore, admin_key: str, ttl_s: float) -> None:
        self.keys = keys
        self.admin_key = admin_key.encode()
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    async def authenticate(self, authorization: str | None) -> Principal:
        secret = _bearer_token(authorization)
        if self.admin_key and hmac.compare_digest(secret.encode(), self.admin_key):
            return ADMIN
        digest = hash_key(secret)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            principal = cached[1]
        else:
            principal = await self._lookup(secret)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[digest] = (now + self.ttl_s, principal)
        if principal is None:
            raise AuthenticationFailed("Incorrect API key provided, or the key has been revoked.")
        return principal

    async def _lookup(self, secret: str) -> Principal | None:
        key = await self.keys.authenticate(secret)
        if key is None:
            return None
        return Principal(key_id=key.id, name=key.name, models=tuple(key.models) if key.models else None)

    def forget(self) -> None:
        """Drop cached lookups (after a key is revoked in this process)."""
        self._cache.clear()


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
