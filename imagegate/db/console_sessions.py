"""Console sign-ins: a random token in an HttpOnly cookie, its SHA-256 and the key it stands for here.

The key's secret is never kept: a session names the key by id, so revoking or disabling the key
ends its sessions too (the authenticator checks the key on every use).

    sessions = SessionStore(engine)
    token, csrf = await sessions.create("key_ab12…")
    session = await sessions.get(token)      # None once expired or signed out
    await sessions.delete(token)
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.db.tables import ConsoleSessionRow

TOKEN_PREFIX = "igs_"
SESSION_TTL = timedelta(hours=12)
_MAX_TOKEN_LENGTH = 128


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    key_id: str
    csrf: str
    expires_at: datetime


def is_session_token(secret: str) -> bool:
    return secret.startswith(TOKEN_PREFIX) and len(secret) <= _MAX_TOKEN_LENGTH


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionStore:
    def __init__(self, engine: AsyncEngine, ttl: timedelta = SESSION_TTL) -> None:
        self._engine = engine
        self.ttl = ttl

    async def create(self, key_id: str) -> tuple[str, str]:
        """A new session for ``key_id``: its cookie token and its CSRF token."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(24)
        now = datetime.now(UTC)
        async with self._engine.begin() as connection:
            # Expired rows go on each sign-in: the table stays the size of the live sessions.
            await connection.execute(delete(ConsoleSessionRow).where(ConsoleSessionRow.expires_at < now))
            await connection.execute(
                insert(ConsoleSessionRow).values(
                    id=_digest(token), key_id=key_id, csrf=csrf, created_at=now, expires_at=now + self.ttl
                )
            )
        return token, csrf

    async def get(self, token: str) -> ConsoleSession | None:
        if not is_session_token(token):
            return None
        query = select(ConsoleSessionRow.key_id, ConsoleSessionRow.csrf, ConsoleSessionRow.expires_at).where(
            ConsoleSessionRow.id == _digest(token)
        )
        async with self._engine.connect() as connection:
            row = (await connection.execute(query)).first()
        if row is None or row.expires_at <= datetime.now(UTC):
            return None
        return ConsoleSession(key_id=row.key_id, csrf=row.csrf, expires_at=row.expires_at)

    async def delete(self, token: str) -> None:
        if not is_session_token(token):
            return
        async with self._engine.begin() as connection:
            await connection.execute(delete(ConsoleSessionRow).where(ConsoleSessionRow.id == _digest(token)))
