"""Config versions: one counter per shared config (``channels``, ``prices``), bumped by every write.

Each write to a shared config bumps its counter in the same transaction, so every process (and
replica) that watches the counter sees the change and reloads. :class:`VersionWatcher` reads the
counters every ``poll_s`` seconds, and at once when a writer publishes on Redis (when
``IMAGEGATE_REDIS_URL`` is set): a change reaches every process within about a second.

    versions = ConfigVersions(engine, redis_url)
    async with engine.begin() as connection:
        ...                                        # the write
        await versions.bump(connection, "channels")
    await versions.announce("channels")           # after the commit: wake the other processes

    watcher = VersionWatcher(versions)
    watcher.subscribe("channels", on_channels_changed)   # async (version: int) -> None
    await watcher.start()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, String, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from imagegate.db.tables import Base

if TYPE_CHECKING:
    from redis.asyncio import Redis

logger = logging.getLogger("imagegate.db")

#: The Redis pub/sub channel writers announce on; the message is the config's name.
REDIS_CHANNEL = "imagegate:config-versions"
Listener = Callable[[int], Awaitable[None]]


class ConfigVersionRow(Base):
    """How many times a shared config has been written."""

    __tablename__ = "config_versions"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)


class ConfigVersions:
    """Bumps and reads the counters; announces bumps on Redis when a URL is given."""

    def __init__(self, engine: AsyncEngine, redis_url: str = "") -> None:
        self.engine = engine
        self.redis_url = redis_url
        self._redis: Redis | None = None

    async def bump(self, connection: AsyncConnection, name: str) -> None:
        """Count one more write of ``name``, inside the writer's transaction."""
        statement = update(ConfigVersionRow).where(ConfigVersionRow.name == name)
        changed = await connection.execute(statement.values(version=ConfigVersionRow.version + 1))
        if changed.rowcount == 0:
            await connection.execute(insert(ConfigVersionRow).values(name=name, version=1))

    async def read(self) -> dict[str, int]:
        async with self.engine.connect() as connection:
            rows = (await connection.execute(select(ConfigVersionRow.name, ConfigVersionRow.version))).all()
        return {name: int(version) for name, version in rows}

    async def get(self, name: str) -> int:
        return (await self.read()).get(name, 0)

    async def announce(self, name: str) -> None:
        """Wake the other processes now (best effort: they poll anyway)."""
        if not self.redis_url:
            return
        try:
            await self.redis().publish(REDIS_CHANNEL, name)
        except Exception as exc:  # Redis down: the others see the change at their next poll
            logger.warning("could not announce a %s change on Redis: %s", name, exc)

    def redis(self) -> Redis:
        if self._redis is None:
            from redis.asyncio import Redis

            self._redis = Redis.from_url(self.redis_url, socket_connect_timeout=2)
        return self._redis

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None


class VersionWatcher:
    """Calls each listener when its config's counter changes (polling, plus Redis when set)."""

    def __init__(self, versions: ConfigVersions, *, poll_s: float = 1.0) -> None:
        self.versions = versions
        self.poll_s = poll_s
        self._listeners: dict[str, list[Listener]] = {}
        self._seen: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def subscribe(self, name: str, listener: Listener, *, seen: int | None = None) -> None:
        """Call ``listener(version)`` whenever ``name``'s counter moves past ``seen``."""
        self._listeners.setdefault(name, []).append(listener)
        if seen is not None:
            self._seen[name] = seen

    async def start(self) -> None:
        for name, version in (await self.versions.read()).items():
            self._seen.setdefault(name, version)
        self._tasks.append(asyncio.create_task(self._poll(), name="imagegate-config-versions"))
        if self.versions.redis_url:
            self._tasks.append(asyncio.create_task(self._listen(), name="imagegate-config-redis"))

    async def check(self) -> None:
        """Read the counters once and call the listeners of those that moved."""
        current = await self.versions.read()
        for name, listeners in self._listeners.items():
            version = current.get(name, 0)
            if version == self._seen.get(name, 0):
                continue
            self._seen[name] = version
            for listener in listeners:
                try:
                    await listener(version)
                except Exception:
                    # The listener keeps what it had; the next change (or poll) tries again.
                    self._seen[name] = -1
                    logger.exception("reloading %s (version %d) failed", name, version)

    async def _poll(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            self._wake.clear()
            try:
                await self.check()
            except Exception:
                logger.exception("reading config versions failed")

    async def _listen(self) -> None:
        while True:
            try:
                pubsub = self.versions.redis().pubsub()
                await pubsub.subscribe(REDIS_CHANNEL)
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("config-version announcements from Redis stopped (%s); polling", exc)
                await asyncio.sleep(self.poll_s)

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
