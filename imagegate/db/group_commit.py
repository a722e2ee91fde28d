"""Group commit: many small writes from concurrent callers, applied in one transaction.

    writer = GroupCommit(engine)
    changed = await writer.run(lambda connection: connection.execute(statement))

On SQLite every transaction takes the single write lock; a burst of callers each opening its
own transaction mostly waits in SQLite's busy handler (sleeps of 1 to 100 ms). Queued here,
whatever arrives while one transaction runs goes into the next. A batch that fails is retried
one write at a time, so one bad write fails only its own caller.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

Write = Callable[[AsyncConnection], Awaitable[Any]]


class GroupCommit:
    def __init__(self, engine: AsyncEngine, *, batch_size: int = 200) -> None:
        self._engine = engine
        self._batch_size = batch_size
        self._queue: list[tuple[Write, asyncio.Future[Any]]] = []
        self._loop_task: asyncio.Task[None] | None = None

    async def run(self, write: Write) -> Any:
        """Apply ``write`` in a shared transaction; returns what it returned once committed."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((write, future))
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.create_task(self._drain(), name="group-commit")
        # Shielded: a caller that goes away must not cancel a write others share.
        return await asyncio.shield(future)

    async def close(self) -> None:
        if self._loop_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self._batch_size], self._queue[self._batch_size :]
            try:
                results = []
                async with self._engine.begin() as connection:
                    for write, _future in batch:
                        results.append(await write(connection))
            except Exception:
                await self._one_by_one(batch)
                continue
            for (_write, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def _one_by_one(self, batch: list[tuple[Write, asyncio.Future[Any]]]) -> None:
        for write, future in batch:
            try:
                async with self._engine.begin() as connection:
                    result = await write(connection)
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)
