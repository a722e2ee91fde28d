"""The task queue and its queries: submit, claim with a lease, renew, finish, cancel, list, expire.

The table is the queue (no queue library): a task's money state and its run state then change
in the same rows and the same transactions as everything else, on SQLite and PostgreSQL alike.

    store = TaskStore(engine)
    await store.create(task, inputs)
    for task in await store.claim("run_ab12", limit=4, lease_s=30):      # queued, or lease expired
        ...
        await store.finish(task.id, "run_ab12", status="completed", result=body)

A claim is one ``UPDATE … WHERE id IN (SELECT … LIMIT n) RETURNING …``: PostgreSQL locks the
chosen rows with ``FOR UPDATE SKIP LOCKED`` so concurrent runners take different ones; SQLite has
a single writer, so the statement is atomic there. Every later write of a runner is conditional on
``runner_id`` still being its own, so a runner whose lease was taken over cannot overwrite it.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Double,
    Integer,
    Select,
    Update,
    and_,
    any_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from imagegate.db.engine import POSTGRES_PREFER_INDEXES
from imagegate.db.group_commit import GroupCommit, Write
from imagegate.db.new_rows import NewRow
from imagegate.db.tables import LedgerRow
from imagegate.db.tasks_tables import KeyWebhookRow, TaskInputRow, TaskRow, WebhookAttemptRow
from imagegate.ttl_cache import TtlCache

ENDED = ("completed", "failed", "cancelled")


@dataclass(slots=True)
class TaskState:
    id: str
    key_id: str
    operation: str
    model: str
    status: str
    request: dict[str, Any]
    principal: dict[str, Any]
    hold_micros: int | None
    created_at: float
    started_at: float | None
    completed_at: float | None
    runner_id: str | None
    lease_until: float | None
    claims: int
    cancel_requested: bool
    partial_images_received: int
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    webhook_url: str | None
    webhook_state: str | None
    webhook_id: str | None
    webhook_attempts: int

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    @property
    def has_inputs(self) -> bool:
        """Whether the task's uploads were stored beside it (``task_inputs``) until it runs."""
        return any(source.get("stored") for source in self.request.get("sources", []))


_COLUMNS = (
    TaskRow.id,
    TaskRow.key_id,
    TaskRow.operation,
    TaskRow.model,
    TaskRow.status,
    TaskRow.request,
    TaskRow.principal,
    TaskRow.hold_micros,
    TaskRow.created_at,
    TaskRow.started_at,
    TaskRow.completed_at,
    TaskRow.runner_id,
    TaskRow.lease_until,
    TaskRow.claims,
    TaskRow.cancel_requested,
    TaskRow.partial_images_received,
    TaskRow.result,
    TaskRow.error,
    TaskRow.webhook_url,
    TaskRow.webhook_state,
    TaskRow.webhook_id,
    TaskRow.webhook_attempts,
)


def _state(row: Any) -> TaskState:
    return TaskState(*row)


@dataclass(frozen=True, slots=True)
class TaskInput:
    role: str  # image | mask
    param: str
    data: bytes


@dataclass(frozen=True, slots=True)
class WebhookDue:
    task_id: str
    key_id: str
    url: str
    webhook_id: str
    body: str
    attempts: int


@dataclass(frozen=True, slots=True)
class WebhookAttempt:
    webhook_id: str
    url: str
    attempted_at: float
    status_code: int | None
    error: str | None
    duration_ms: float


def _input_row(task_id: str, position: int, item: TaskInput) -> dict[str, Any]:
    row: dict[str, Any] = {"task_id": task_id, "position": position, "role": item.role}
    row.update(param=item.param, data=item.data)
    return row


#: Built once: a statement made per call with ``.values(**row)`` is traversed anew for its cache
#: key on every submit, which cost more than the insert.
_INSERT_TASK = insert(TaskRow)
_TASKS = TaskRow.metadata.tables[TaskRow.__tablename__]


_DELETE_INPUTS = delete(TaskInputRow).where(TaskInputRow.task_id == bindparam("where_task"))


@functools.cache
def _finish_statement(by_runner: bool, columns: tuple[str, ...]) -> Update:
    """A task's move to its end state, with every value bound: built once per shape, like
    ``_INSERT_TASK``, instead of once per task."""
    conditions = [TaskRow.id == bindparam("where_id"), TaskRow.status == bindparam("where_status")]
    if by_runner:
        conditions.append(TaskRow.runner_id == bindparam("where_runner"))
    return update(TaskRow).where(*conditions).values({column: bindparam(column) for column in columns})


def _picked(postgres: bool, candidates: Select[Any]) -> ColumnElement[bool]:
    """``tasks.id`` among the candidate rows, each taken by one claimer only.

    PostgreSQL: a CTE, locked with SKIP LOCKED, its ids made one array that the primary key is
    looked up with. Written as ``id IN (SELECT … LIMIT n)`` the planner may run the subquery
    again per row and take more than ``n`` rows; joined as ``UPDATE … FROM picked``, a plan
    cached while the table was small walked every queued row once per picked one (15 ms a
    claim with 2,000 queued). SQLite runs the subquery once, inside its single write lock.
    """
    if postgres:
        picked = candidates.with_for_update(skip_locked=True).cte("picked")
        return TaskRow.id == any_(func.array(select(picked.c.id).scalar_subquery()))
    return TaskRow.id.in_(candidates.scalar_subquery())


@functools.cache
def _claim_statement(postgres: bool, *, expired: bool) -> Update:
    """Take the oldest tasks of one state: queued, or processing with a lease that ran out.

    One state per statement: asked for "queued OR lease ran out" in one query, SQLite read and
    sorted every queued row on each claim (1.4 ms with 10,000 queued), holding the writer. Built
    once with every value bound, as building it per claim cost more than running it.
    """
    now = bindparam("claim_now", type_=Double)
    state = (
        and_(TaskRow.status == "processing", TaskRow.lease_until < now)
        if expired
        else TaskRow.status == "queued"
    )
    candidates = (
        select(TaskRow.id)
        .where(state)
        .order_by(TaskRow.created_at, TaskRow.id)
        .limit(bindparam("claim_limit", type_=Integer))
    )
    # No second look at the state in the UPDATE's own WHERE. PostgreSQL: FOR UPDATE already
    # re-evaluates the candidates' WHERE on the latest version of each row it locks (a row
    # claimed or renewed meanwhile is dropped), and the lock keeps it so until COMMIT; repeated
    # there, a plan cached while the table was small looked the picked ids up through the
    # state's index, walking every queued row. SQLite runs the statement whole under its one
    # writer, and there the repeat made it walk every queued row's index entry (8 ms, not 0.2,
    # with 10,000 queued, all of it holding the write lock).
    statement = update(TaskRow).where(_picked(postgres, candidates))
    return statement.values(
        status="processing",
        runner_id=bindparam("claim_runner"),
        lease_until=bindparam("claim_lease_until"),
        claims=TaskRow.claims + 1,
        started_at=func.coalesce(TaskRow.started_at, now),
    ).returning(*_COLUMNS)


@functools.cache
def _webhook_claim_statement(postgres: bool) -> Update:
    """Due webhook deliveries, pushed into the future (to ``claim_until``) so that no other
    process sends them meanwhile; built once, like the task claims."""
    now = bindparam("claim_now", type_=Double)
    due = (
        select(TaskRow.id)
        .where(TaskRow.webhook_state == "pending", TaskRow.webhook_next_at <= now)
        .order_by(TaskRow.webhook_next_at)
        .limit(bindparam("claim_limit", type_=Integer))
    )
    return (
        update(TaskRow)
        .where(_picked(postgres, due), TaskRow.webhook_next_at <= now)
        .values(webhook_next_at=bindparam("claim_until"))
        .returning(
            TaskRow.id,
            TaskRow.key_id,
            TaskRow.webhook_url,
            TaskRow.webhook_id,
            TaskRow.webhook_body,
            TaskRow.webhook_attempts,
        )
    )


class TaskStore:
    def __init__(self, engine: AsyncEngine, *, key_cache_ttl_s: float = 0.0) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        #: Submits, partial counts and ends of many tasks share transactions (group commit).
        self._writes = GroupCommit(engine)
        self._key_urls: TtlCache[str, str | None] = TtlCache(key_cache_ttl_s)

    async def _row_write(self, task_id: str, write: Write) -> Any:
        """A write to one existing task row, group-committed with others. On PostgreSQL a batch
        locks its rows in id order, as a lease renewal does, so the two never deadlock."""
        return await self._writes.run(write, row=task_id)

    # -- submit and read --------------------------------------------------------------------------

    def new_row(self, values: dict[str, Any]) -> NewRow:
        """A task's row as another transaction can write it (`create` writes it alone)."""
        return NewRow(_TASKS, values)

    async def create(self, values: dict[str, Any], inputs: list[TaskInput]) -> None:
        if not inputs:
            # The common case (a generation): one row, inserted with the batch's other new tasks.
            await self._writes.insert(_INSERT_TASK, values)
            return

        async def write(connection: AsyncConnection) -> None:
            await connection.execute(_INSERT_TASK, values)
            await connection.execute(
                insert(TaskInputRow),
                [_input_row(values["id"], position, item) for position, item in enumerate(inputs)],
            )

        await self._writes.run(write)

    async def get(self, task_id: str) -> TaskState | None:
        async with self._engine.connect() as connection:
            row = (await connection.execute(select(*_COLUMNS).where(TaskRow.id == task_id))).first()
        return None if row is None else _state(row)

    async def inputs(self, task_id: str) -> list[TaskInput]:
        query = (
            select(TaskInputRow.role, TaskInputRow.param, TaskInputRow.data)
            .where(TaskInputRow.task_id == task_id)
            .order_by(TaskInputRow.position)
        )
        async with self._engine.connect() as connection:
            return [TaskInput(*row) for row in (await connection.execute(query)).all()]

    async def page(
        self, key_id: str | None, *, status: str | None, limit: int, after: str | None
    ) -> tuple[list[TaskState], bool]:
        """Tasks newest first (a key's, or all for None); ``after`` is the last id of a page."""
        query = select(*_COLUMNS).order_by(TaskRow.created_at.desc(), TaskRow.id.desc()).limit(limit + 1)
        if key_id is not None:
            query = query.where(TaskRow.key_id == key_id)
        if status is not None:
            query = query.where(TaskRow.status == status)
        async with self._engine.connect() as connection:
            if after is not None:
                anchor = (
                    await connection.execute(select(TaskRow.created_at).where(TaskRow.id == after))
                ).first()
                if anchor is not None:
                    query = query.where(
                        or_(
                            TaskRow.created_at < anchor[0],
                            and_(TaskRow.created_at == anchor[0], TaskRow.id < after),
                        )
                    )
            rows = (await connection.execute(query)).all()
        return [_state(row) for row in rows[:limit]], len(rows) > limit

    async def position(self, task: TaskState) -> int:
        """How many queued tasks will be claimed before this one (0: next)."""
        query = select(func.count()).where(
            TaskRow.status == "queued",
            or_(
                TaskRow.created_at < task.created_at,
                and_(TaskRow.created_at == task.created_at, TaskRow.id < task.id),
            ),
        )
        async with self._engine.connect() as connection:
            return int((await connection.execute(query)).scalar_one())

    # -- runners ----------------------------------------------------------------------------------

    async def claim(
        self, runner_id: str, *, limit: int, lease_s: float, expired: bool = True
    ) -> list[TaskState]:
        """Take up to ``limit`` tasks: ones whose runner's lease ran out (unless ``expired`` is
        False), then queued ones, oldest first."""
        now = time.time()
        params = {"claim_now": now, "claim_runner": runner_id, "claim_lease_until": now + lease_s}
        rows: list[Any] = []
        async with self._engine.begin() as connection:
            if self._postgres:
                # The oldest entries of the queue's index, then the picked rows by primary key.
                await connection.exec_driver_sql(POSTGRES_PREFER_INDEXES)
            if expired:
                statement = _claim_statement(self._postgres, expired=True)
                rows += (await connection.execute(statement, {**params, "claim_limit": limit})).all()
            if len(rows) < limit:
                statement = _claim_statement(self._postgres, expired=False)
                taken = await connection.execute(statement, {**params, "claim_limit": limit - len(rows)})
                rows += taken.all()
        return sorted((_state(row) for row in rows), key=lambda t: (t.created_at, t.id))

    async def renew(self, runner_id: str, task_ids: list[str], lease_s: float) -> dict[str, bool]:
        """Extend the leases of tasks still ours; returns {id: cancel_requested} for those."""
        if not task_ids:
            return {}
        ours = select(TaskRow.id).where(
            TaskRow.id.in_(task_ids), TaskRow.runner_id == runner_id, TaskRow.status == "processing"
        )
        if self._postgres:
            # Row locks in id order: two transactions locking many task rows never deadlock.
            locked = ours.order_by(TaskRow.id).with_for_update().cte("ours")
            target: ColumnElement[bool] = TaskRow.id == locked.c.id
        else:
            target = TaskRow.id.in_(ours.scalar_subquery())
        statement = (
            update(TaskRow)
            .where(target, TaskRow.runner_id == runner_id, TaskRow.status == "processing")
            .values(lease_until=time.time() + lease_s)
            .returning(TaskRow.id, TaskRow.cancel_requested)
        )
        async with self._engine.begin() as connection:
            rows = (await connection.execute(statement)).all()
        return {row[0]: bool(row[1]) for row in rows}

    async def count_partial(self, task_id: str, runner_id: str, received: int) -> None:
        statement = (
            update(TaskRow)
            .where(TaskRow.id == task_id, TaskRow.runner_id == runner_id, TaskRow.status == "processing")
            .values(partial_images_received=received)
        )
        await self._row_write(task_id, lambda connection: connection.execute(statement))

    async def finish(
        self,
        task_id: str,
        *,
        runner_id: str | None,
        from_status: str,
        status: str,
        result: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
        webhook: dict[str, Any] | None = None,
        inputs: bool = True,
    ) -> bool:
        """Move a task to its end state; False when it was no longer ``from_status`` (and ours).
        ``inputs``: whether the task stored uploads, deleted with its end (False spares a
        statement per task)."""
        values: dict[str, Any] = {
            "status": status,
            "result": result,
            "error": error,
            "completed_at": time.time(),
            "lease_until": None,
            **(webhook or {}),
        }
        statement = _finish_statement(runner_id is not None, tuple(values))
        params = {"where_id": task_id, "where_status": from_status, "where_runner": runner_id, **values}

        async def write(connection: AsyncConnection) -> bool:
            changed = (await connection.execute(statement, params)).rowcount
            if changed == 1 and inputs:
                # Inputs are needed only to run it; an ended task keeps its result alone.
                await connection.execute(_DELETE_INPUTS, {"where_task": task_id})
            return bool(changed == 1)

        return bool(await self._row_write(task_id, write))

    async def requeue(self, task_id: str, runner_id: str) -> bool:
        """Give a task back to the queue (this process is shutting down); its hold stays taken."""
        statement = (
            update(TaskRow)
            .where(TaskRow.id == task_id, TaskRow.runner_id == runner_id, TaskRow.status == "processing")
            .values(status="queued", runner_id=None, lease_until=None)
        )
        async with self._engine.begin() as connection:
            return (await connection.execute(statement)).rowcount == 1

    async def request_cancel(self, task_id: str) -> bool:
        statement = (
            update(TaskRow)
            .where(TaskRow.id == task_id, TaskRow.status == "processing")
            .values(cancel_requested=True)
        )
        async with self._engine.begin() as connection:
            return (await connection.execute(statement)).rowcount == 1

    async def money_state(self, task_id: str) -> str:
        """What the ledger says of the task's hold: ``charged``, ``released`` or ``open``."""
        query = select(LedgerRow.kind).where(LedgerRow.request_id == task_id, LedgerRow.kind != "hold")
        async with self._engine.connect() as connection:
            kinds = set((await connection.execute(query)).scalars().all())
        if "charge" in kinds:
            return "charged"
        return "released" if "release" in kinds else "open"

    # -- expiry -----------------------------------------------------------------------------------

    async def stale_queued(self, older_than: float, limit: int = 500) -> list[TaskState]:
        query = (
            select(*_COLUMNS)
            .where(TaskRow.status == "queued", TaskRow.created_at < older_than)
            .order_by(TaskRow.created_at)
            .limit(limit)
        )
        async with self._engine.connect() as connection:
            return [_state(row) for row in (await connection.execute(query)).all()]

    async def delete_ended(self, before: float) -> int:
        """Forget tasks that ended before ``before`` (their webhooks done or given up)."""
        ids = (
            select(TaskRow.id)
            .where(
                TaskRow.status.in_(ENDED),
                TaskRow.completed_at < before,
                or_(TaskRow.webhook_state.is_(None), TaskRow.webhook_state != "pending"),
            )
            .limit(1000)
        )
        async with self._engine.begin() as connection:
            doomed = list((await connection.execute(ids)).scalars().all())
            if not doomed:
                return 0
            await connection.execute(delete(WebhookAttemptRow).where(WebhookAttemptRow.task_id.in_(doomed)))
            await connection.execute(delete(TaskInputRow).where(TaskInputRow.task_id.in_(doomed)))
            await connection.execute(delete(TaskRow).where(TaskRow.id.in_(doomed)))
        return len(doomed)

    async def status_counts(self) -> dict[str, int]:
        query = select(TaskRow.status, func.count()).group_by(TaskRow.status)
        async with self._engine.connect() as connection:
            return {row[0]: int(row[1]) for row in (await connection.execute(query)).all()}

    # -- webhooks ---------------------------------------------------------------------------------

    async def claim_webhooks(self, *, limit: int, lease_s: float) -> list[WebhookDue]:
        """Due deliveries, pushed ``lease_s`` into the future so no other process sends them meanwhile."""
        now = time.time()
        statement = _webhook_claim_statement(self._postgres)
        params = {"claim_now": now, "claim_limit": limit, "claim_until": now + lease_s}
        async with self._engine.begin() as connection:
            rows = (await connection.execute(statement, params)).all()
        return [WebhookDue(row[0], row[1], row[2] or "", row[3] or "", row[4] or "", row[5]) for row in rows]

    async def record_attempt(
        self, due: WebhookDue, attempt: WebhookAttempt, *, next_at: float | None
    ) -> None:
        """Write one attempt; the delivery is then done (2xx), retried at ``next_at``, or given up."""
        delivered = attempt.status_code is not None and 200 <= attempt.status_code < 300
        state = "delivered" if delivered else ("pending" if next_at is not None else "failed")
        async with self._engine.begin() as connection:
            await connection.execute(
                insert(WebhookAttemptRow).values(
                    task_id=due.task_id,
                    webhook_id=attempt.webhook_id,
                    url=attempt.url,
                    attempted_at=attempt.attempted_at,
                    status_code=attempt.status_code,
                    error=attempt.error,
                    duration_ms=attempt.duration_ms,
                )
            )
            await connection.execute(
                update(TaskRow)
                .where(TaskRow.id == due.task_id)
                .values(
                    webhook_state=state,
                    webhook_attempts=TaskRow.webhook_attempts + 1,
                    webhook_next_at=None if state != "pending" else next_at,
                )
            )

    async def attempts(self, task_id: str) -> list[WebhookAttempt]:
        query = (
            select(
                WebhookAttemptRow.webhook_id,
                WebhookAttemptRow.url,
                WebhookAttemptRow.attempted_at,
                WebhookAttemptRow.status_code,
                WebhookAttemptRow.error,
                WebhookAttemptRow.duration_ms,
            )
            .where(WebhookAttemptRow.task_id == task_id)
            .order_by(WebhookAttemptRow.id)
        )
        async with self._engine.connect() as connection:
            return [WebhookAttempt(*row) for row in (await connection.execute(query)).all()]

    # -- keys' webhook settings -------------------------------------------------------------------

    async def key_webhook(self, key_id: str) -> tuple[str | None, str | None]:
        """The key's default webhook URL and its signing secret."""
        query = select(KeyWebhookRow.url, KeyWebhookRow.secret).where(KeyWebhookRow.key_id == key_id)
        async with self._engine.connect() as connection:
            row = (await connection.execute(query)).first()
        return (None, None) if row is None else (row[0], row[1])

    async def key_webhook_url(self, key_id: str) -> str | None:
        """The key's default webhook URL, as a submit needs it: cached for ``key_cache_ttl_s``
        like the keys themselves (`imagegate.services.auth`), since a burst of submits would
        otherwise read it once each. A change made through this store applies at once."""

        async def load() -> str | None:
            return (await self.key_webhook(key_id))[0]

        return await self._key_urls.get(key_id, load)

    async def set_key_webhook(self, key_id: str, **values: str | None) -> None:
        async with self._engine.begin() as connection:
            changed = await connection.execute(
                update(KeyWebhookRow).where(KeyWebhookRow.key_id == key_id).values(**values)
            )
            if changed.rowcount == 0:
                await connection.execute(insert(KeyWebhookRow).values(key_id=key_id, **values))
        self._key_urls.forget(key_id)
