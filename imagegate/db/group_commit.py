"""Group commit: many small writes from concurrent callers, applied in one transaction.

    writer = GroupCommit(engine)
    changed = await writer.run(lambda connection: connection.execute(statement), row="task_1")
    await writer.insert(insert(TaskRow), row)      # one row; a batch's rows go as one executemany

On SQLite every transaction takes the single write lock; a burst of callers each opening its
own transaction mostly waits in SQLite's busy handler (sleeps of 1 to 100 ms). On PostgreSQL
every transaction costs a BEGIN, a COMMIT and a WAL flush, round trips that a process short of
CPU also keeps its connection waiting for. Queued here, whatever arrives while one transaction
runs goes into the next. A batch that fails is retried one write at a time, so one bad write
fails only its own caller.

A write that changes an existing row names it (``row=``, its primary key) and a batch applies
such writes in that order. PostgreSQL locks each row as it is updated, so two transactions that
both lock many rows in key order (a batch, and a lease renewal's ``SELECT … ORDER BY id FOR
UPDATE``) can wait for each other but never in a cycle: no deadlock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Executable
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

Write = Callable[[AsyncConnection], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class _Insert:
    """One new row for ``statement``; the rows of one statement in a batch share one executemany."""

    statement: Executable
    row: dict[str, Any]

    async def __call__(self, connection: AsyncConnection) -> None:
        await connection.execute(self.statement, self.row)


@dataclass(frozen=True, slots=True)
class _Queued:
    write: Write | _Insert
    future: asyncio.Future[Any]
    #: The primary key of the existing row the write changes ("" for none): the batch's order.
    row: str = ""


class GroupCommit:
    def __init__(self, engine: AsyncEngine, *, batch_size: int = 200) -> None:
        self._engine = engine
        self._batch_size = batch_size
        self._queue: list[_Queued] = []
        self._loop_task: asyncio.Task[None] | None = None

    async def run(self, write: Write, *, row: str = "") -> Any:
        """Apply ``write`` in a shared transaction; returns what it returned once committed.
        ``row``: the key of the existing row it changes, if any (see the module docstring)."""
        return await self._enqueue(write, row)

    async def insert(self, statement: Executable, row: dict[str, Any]) -> None:
        """Insert ``row`` in a shared transaction. The batch's rows for one statement go first, as
        one executemany (one database round trip for all), so use it for new rows only: rows no
        other write of the same batch could refer to."""
        await self._enqueue(_Insert(statement, row))

    async def _enqueue(self, write: Write | _Insert, row: str = "") -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append(_Queued(write, future, row))
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
            # Stable: writes naming no row keep their order, before those that lock one.
            batch.sort(key=lambda queued: queued.row)
            try:
                results = await self._apply(batch)
            except Exception:
                await self._one_by_one(batch)
                continue
            for queued, result in zip(batch, results, strict=True):
                if not queued.future.done():
                    queued.future.set_result(result)

    async def _apply(self, batch: list[_Queued]) -> list[Any]:
        inserts: dict[Executable, list[dict[str, Any]]] = {}
        for queued in batch:
            if isinstance(queued.write, _Insert):
                inserts.setdefault(queued.write.statement, []).append(queued.write.row)
        results = []
        async with self._engine.begin() as connection:
            for statement, rows in inserts.items():
                await connection.execute(statement, rows)
            for queued in batch:
                write = queued.write
                results.append(None if isinstance(write, _Insert) else await write(connection))
        return results

    async def _one_by_one(self, batch: list[_Queued]) -> None:
        for queued in batch:
            future = queued.future
            try:
                async with self._engine.begin() as connection:
                    result = await queued.write(connection)
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)
