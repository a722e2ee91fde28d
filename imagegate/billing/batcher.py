"""Group commit for the ledger: every hold, settle and release queued meanwhile, in one transaction.

A request's ledger write only queues an operation and awaits its future; one task per process
takes everything queued (up to ``batch_size``) and applies it in a single transaction, with the
same conditional statements a lone write would use, then commits once and resolves the futures.
While one batch commits the next one gathers, so the cost of a transaction (and of the thread
hops of a database driver) is shared by every request that arrived during the previous one.
The statements themselves live in ``ledger_sql.py``.

    batcher = LedgerBatcher(engine)
    refusal = await batcher.hold(HoldOp("key_1", "req_1", 40_000))     # None: held
    rows = (("release", 40_000), ("charge", -20_000))
    applied = await batcher.submit_move(MoveOp("key_1", "req_1", 20_000, rows))  # even if not awaited
    await batcher.drain()                                              # at shutdown

The database stays the authority: a hold is ``UPDATE … WHERE balance_micros >= :amount`` and its
row count decides it, so several processes (PostgreSQL or SQLite) can never overdraw a key.
A hold whose waiter is cancelled after the batch took it is released by the batcher itself, and a
batch that fails is retried one operation per transaction, so one bad operation fails only its
own future. A settle or release applies only if its transaction closes the open hold (`applied`
False: it was closed already), so a retry never applies twice; a hold whose commit succeeded
but whose answer was lost is found again rather than failed. The task runs only while something
is queued; ``drain`` waits until nothing is.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.billing.ledger_sql import (
    HoldOp,
    MoveOp,
    Op,
    Outcome,
    Plan,
    Refusal,
    Statements,
    apply_with_engine,
    hold_is_open,
)
from imagegate.billing.ledger_sqlite import SqliteFileWriter, sqlite_file
from imagegate.db.engine import write_gate

__all__ = ["HoldOp", "LedgerBatcher", "MoveOp", "Refusal"]

logger = logging.getLogger("imagegate.billing")


class LedgerBatcher:
    """Applies queued ledger operations in shared transactions; see the module docstring."""

    def __init__(self, engine: AsyncEngine, *, owner: str, batch_size: int = 500) -> None:
        self._engine = engine
        #: The process whose holds these are (see billing/leases.py).
        self.owner = owner
        self.batch_size = batch_size
        self._sql = Statements(engine.dialect)
        self._sqlite = engine.dialect.name == "sqlite"
        path = sqlite_file(engine.url)
        self._file = SqliteFileWriter(path, self._sql, engine.dialect) if path is not None else None
        self._queue: deque[Op] = deque()
        self._task: asyncio.Task[None] | None = None
        #: Operations in the batch being applied now (tests watch it to time a cancellation).
        self.in_flight = 0
        self.batches = 0

    def submit_hold(self, op: HoldOp) -> asyncio.Future[Refusal | None]:
        """Queue a hold; cancelling the returned future gives the hold back if it was taken."""
        future: asyncio.Future[Refusal | None] = self._loop().create_future()
        op.future = future
        self._enqueue(op)
        return future

    async def hold(self, op: HoldOp) -> Refusal | None:
        """Queue a hold and wait for it: None when taken, else why not."""
        return await self.outcome(op, self.submit_hold(op))

    async def outcome(self, op: HoldOp, future: asyncio.Future[Refusal | None]) -> Refusal | None:
        """Wait for a submitted hold; a waiter cancelled once it was taken gives it back."""
        try:
            return await future
        except asyncio.CancelledError:
            # The batch may have resolved the future just before the cancellation reached this
            # task (which then never sees the result): that hold would be held forever.
            taken = future.done() and not future.cancelled() and future.exception() is None
            if taken and future.result() is None:
                self._give_back(op)
            raise

    def submit_move(self, op: MoveOp) -> asyncio.Future[bool]:
        """Queue a settle or release; applied even if nobody awaits the future, which gets False
        when the hold was closed already (nothing applied)."""
        future: asyncio.Future[bool] = self._loop().create_future()
        op.future = future
        self._enqueue(op)
        return future

    async def drain(self) -> None:
        """Wait until every queued operation is applied (or failed); at shutdown, before the
        engine is disposed. A SQLite file's connection is closed (and reopened if needed)."""
        while self._task is not None and not self._task.done():
            # wait() neither raises the task's error nor cancels it when the caller is cancelled.
            await asyncio.wait({self._task})
        if self._file is not None:
            await self._file.close()

    def _loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._task is not None and self._task.get_loop() is not loop:
            self._task = None  # left behind by a loop that has ended (tests, CLI calls)
        return loop

    def _enqueue(self, op: Op) -> None:
        self._queue.append(op)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="imagegate-ledger")

    async def _run(self) -> None:
        batch: list[Op] = []
        try:
            while self._queue:
                count = min(len(self._queue), self.batch_size)
                batch = [self._queue.popleft() for _ in range(count)]
                await self._apply(batch)
                batch = []
        except asyncio.CancelledError:
            # Only an event loop shutting down cancels this task; the waiters must not hang.
            pending = [*batch, *self._queue]
            self._queue.clear()
            for op in pending:
                _fail(op, RuntimeError("the ledger stopped before this operation was applied"))
            if pending:
                logger.error("%d ledger operations abandoned by a cancelled batcher", len(pending))
            raise
        finally:
            self._task = None

    async def _apply(self, batch: list[Op]) -> None:
        # A hold whose waiter left before the batch began is simply not taken.
        ops = [op for op in batch if not (isinstance(op, HoldOp) and _cancelled(op))]
        if not ops:
            return
        self.in_flight = len(ops)
        try:
            outcomes = await self._transaction(ops)
        except Exception as error:
            if len(ops) == 1:
                await self._fail_alone(ops[0], error)
                return
            # One bad operation (or a deadlock, or a blip) must not fail its neighbours: retry
            # each alone, so only the operations that fail by themselves report an error.
            logger.warning("a batch of %d ledger writes failed (%s); retrying one by one", len(ops), error)
            for op in ops:
                await self._apply([op])
            return
        finally:
            self.in_flight = 0
        self.batches += 1
        for op, outcome in zip(ops, outcomes, strict=True):
            self._resolve(op, outcome)

    async def _fail_alone(self, op: Op, error: Exception) -> None:
        if isinstance(op, HoldOp):
            # An earlier commit of this very hold may have succeeded with its answer lost (a
            # dropped connection): then its retry conflicts, and the hold is there to be used.
            try:
                if await hold_is_open(self._engine, op, self.owner):
                    self._resolve(op, None)
                    return
            except Exception:
                logger.debug("could not look for the open hold of %s", op.request_id, exc_info=True)
        logger.error("ledger write for request %s failed", op.request_id, exc_info=error)
        _fail(op, error)

    def _resolve(self, op: Op, outcome: Outcome) -> None:
        if isinstance(op, MoveOp):
            if op.future is not None and not op.future.done():
                op.future.set_result(bool(outcome))
            return
        assert not isinstance(outcome, bool)
        if op.future is not None and not op.future.cancelled():
            op.future.set_result(outcome)
        elif outcome is None:
            self._give_back(op)

    def _give_back(self, op: HoldOp) -> None:
        """Release a hold that was taken for a waiter who has gone, unless it brought rows: those
        (a submitted task) were committed with it and own it now."""
        if op.rows:
            logger.info("the hold of request %s stays with its rows: its waiter was cancelled", op.request_id)
            return
        logger.info("releasing the hold of request %s: its waiter was cancelled", op.request_id)
        self._enqueue(MoveOp(op.key_id, op.request_id, op.amount, (("release", op.amount),)))

    async def _transaction(self, ops: list[Op]) -> list[Outcome]:
        """Apply ``ops`` in one transaction; one outcome per op."""
        plan = Plan(ops, sqlite=self._sqlite, owner=self.owner)
        if self._file is not None:
            async with write_gate(self._engine):
                await self._file.apply(plan)
        else:
            plan = await apply_with_engine(self._engine, self._sql, plan)
        return plan.outcomes


def _cancelled(op: HoldOp) -> bool:
    return op.future is not None and op.future.cancelled()


def _fail(op: Op, error: BaseException) -> None:
    future = op.future
    if future is not None and not future.done():
        future.set_exception(error)
