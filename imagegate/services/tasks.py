"""Async tasks (SPEC §10): submit, read, wait for, cancel and list image requests run in the background.

    tasks = TaskService(store, pipeline, billing, runner, webhooks, settings)
    task = await tasks.submit(request, principal, webhook_url=None)   # checks + hold now, run later
    task = await tasks.wait(task.id, principal, timeout_s=30)         # Prefer: wait=30
    task = await tasks.cancel(task.id, principal)

Submitting does exactly what a sync request does before it runs — validation, access, the quota
hold (``pipeline.admit`` with the task id as request id) — so its errors are the sync errors; the
request is stored (a generation's row in the hold's own transaction, an edit's with its uploads
after it) and any runner may run it (``tasks_runner``). The one
who moves a task to its end state in the database owns its money from then: the runner (settle or
release through the pipeline), or here a cancel of a task still queued (release).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import secrets
import time
from dataclasses import dataclass
from typing import Any

from imagegate.billing.ledger import Hold
from imagegate.billing.meter import Billing
from imagegate.db.new_rows import NewRow
from imagegate.db.request_logs import RequestLogWriter
from imagegate.db.tasks import TaskInput, TaskState, TaskStore, WebhookAttempt
from imagegate.domain import ImageRequest, Principal
from imagegate.errors import InvalidRequest, NotFound
from imagegate.services.generation import GenerationPipeline
from imagegate.services.tasks_codec import principal_to_json, request_to_json, task_object
from imagegate.services.tasks_runner import TaskRenderer, TaskRunner
from imagegate.services.tasks_webhooks import WebhookSender, check_webhook_url, webhook_fields
from imagegate.settings import Settings

STATUSES = ("queued", "processing", "completed", "failed", "cancelled")
#: The longest ``Prefer: wait=N`` honoured (§10).
MAX_WAIT_S = 60
_POLL_S = 0.25


def new_task_id() -> str:
    return "task_" + secrets.token_hex(12)


@dataclass(frozen=True, slots=True)
class TaskView:
    """A task as its owner sees it: the row, and its place in the queue while it waits."""

    task: TaskState
    position: int | None = None

    def to_wire(self) -> dict[str, object]:
        return task_object(self.task, position=self.position)


class TaskService:
    def __init__(
        self,
        store: TaskStore,
        pipeline: GenerationPipeline,
        billing: Billing,
        settings: Settings,
    ) -> None:
        self.store = store
        self.pipeline = pipeline
        self.billing = billing
        self.settings = settings
        self.runner: TaskRunner | None = None
        self.webhooks: WebhookSender | None = None
        self._sweeper: asyncio.Task[None] | None = None

    # -- life (the runner needs the API's renderers, so it starts once those are known) ---------

    async def start(self, renderer: TaskRenderer, request_log: RequestLogWriter) -> None:
        self.runner = TaskRunner(
            self.store, self.pipeline, self.billing, request_log, self.settings, renderer
        )
        self.webhooks = WebhookSender(self.store, self.settings)
        await self.runner.start()
        await self.webhooks.start()
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="tasks-expiry")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self.runner is not None:
            await self.runner.stop()
        if self.webhooks is not None:
            await self.webhooks.stop()

    # -- client operations ----------------------------------------------------------------------

    async def submit(self, request: ImageRequest, principal: Principal, webhook_url: str | None) -> TaskView:
        # Counted while answered: the runner yields the CPU to submits (TaskRunner._slots).
        with self.runner.answering_submit() if self.runner is not None else contextlib.nullcontext():
            return await self._submit(request, principal, webhook_url)

    async def _submit(self, request: ImageRequest, principal: Principal, webhook_url: str | None) -> TaskView:
        if webhook_url is not None:
            check_webhook_url(webhook_url)
        else:
            webhook_url = await self.store.key_webhook_url(principal.key_id)
        # The answer is never a stream (progress is the events endpoint), but partial images are
        # still asked of the upstream when wanted, for those events.
        request.stream = request.partial_images > 0
        task = _NewTask(self.store, new_task_id(), request, principal, webhook_url)
        meter = await self.pipeline.admit(request, principal, task.id, with_hold=task.rows_with_hold)
        hold = meter.hold if meter.hold is not None and meter.hold.recorded else None
        if hold is not None:
            task.values["hold_micros"] = hold.amount
        # A recorded hold took the row of a task without inputs with it (`rows_with_hold`).
        if hold is None or task.inputs:
            try:
                await self.store.create(task.values, task.inputs)
            except BaseException:
                await meter.close()  # not stored: nobody will run it, so the hold goes back now
                raise
        if self.runner is not None:
            self.runner.wake()
        # Built from what was written rather than read back: submit is the hot path of a burst.
        return TaskView(new_task_state(task.values))

    async def get(self, task_id: str, principal: Principal) -> TaskView:
        task = await self.store.get(task_id)
        if task is None or not (principal.is_admin or task.key_id == principal.key_id):
            # Another key's task does not exist as far as this key can tell.
            raise NotFound(f"No task with id '{task_id}'.", param="task_id", code="task_not_found")
        return TaskView(task, await self.store.position(task) if task.status == "queued" else None)

    async def wait(self, task_id: str, principal: Principal, timeout_s: float) -> TaskView:
        """The task once it ended, or as it is after ``timeout_s``."""
        deadline = time.monotonic() + min(timeout_s, MAX_WAIT_S)
        while True:
            view = await self.get(task_id, principal)
            if view.task.ended or time.monotonic() >= deadline:
                return view
            await asyncio.sleep(min(_POLL_S, max(0.0, deadline - time.monotonic())))

    async def cancel(self, task_id: str, principal: Principal) -> TaskView:
        view = await self.get(task_id, principal)
        task = view.task
        if task.status == "queued":
            ended = _ended_copy(task, "cancelled")
            fields = webhook_fields(ended, task_object(ended), self.settings)
            if await self.store.finish(
                task.id,
                runner_id=None,
                from_status="queued",
                status="cancelled",
                webhook=fields,
                inputs=task.has_inputs,
            ):
                await self._release(task)
                return await self.get(task_id, principal)
            task = (await self.get(task_id, principal)).task  # claimed meanwhile
        if task.status == "processing":
            if not (self.runner is not None and self.runner.cancel_local(task.id)):
                await self.store.request_cancel(task.id)
            # The runner releases the hold and ends the task within a second or two.
            return await self.wait(task_id, principal, timeout_s=10)
        return await self.get(task_id, principal)

    async def page(
        self, principal: Principal, *, status: str | None, limit: int, after: str | None
    ) -> tuple[list[TaskView], bool]:
        if status is not None and status not in STATUSES:
            raise InvalidRequest(
                f"Invalid value for 'status': expected one of {', '.join(STATUSES)}.", param="status"
            )
        if not 1 <= limit <= 100:
            raise InvalidRequest("Invalid value for 'limit': expected 1 to 100.", param="limit")
        owner = None if principal.is_admin else principal.key_id
        tasks, more = await self.store.page(owner, status=status, limit=limit, after=after)
        return [TaskView(task) for task in tasks], more

    async def attempts(self, task_id: str) -> list[WebhookAttempt]:
        return await self.store.attempts(task_id)

    # -- money and expiry -------------------------------------------------------------------------

    async def _release(self, task: TaskState) -> None:
        if task.hold_micros is not None and self.billing.ledger is not None:
            await self.billing.ledger.release(Hold(task.key_id, task.id, task.hold_micros, recorded=True))

    async def expire(self) -> None:
        """Tasks still queued after the TTL fail (hold released); ended ones past it are deleted."""
        cutoff = time.time() - self.settings.task_ttl_hours * 3600
        for task in await self.store.stale_queued(cutoff):
            error = {
                "message": "The task waited in the queue longer than the task lifetime and expired.",
                "type": "server_error",
                "param": None,
                "code": "task_expired",
            }
            ended = _ended_copy(task, "failed")
            ended.error = error
            fields = webhook_fields(ended, task_object(ended), self.settings)
            if await self.store.finish(
                task.id,
                runner_id=None,
                from_status="queued",
                status="failed",
                error=error,
                webhook=fields,
                inputs=task.has_inputs,
            ):
                await self._release(task)
        await self.store.delete_ended(cutoff)

    async def _sweep_loop(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                await self.expire()
            await asyncio.sleep(60)


class _NewTask:
    """A task being submitted: its row, built once the pipeline checked the request (the checks
    may fit it, its size), and what it offered to commit with the hold."""

    def __init__(
        self,
        store: TaskStore,
        task_id: str,
        request: ImageRequest,
        principal: Principal,
        webhook_url: str | None,
    ) -> None:
        self.store, self.id, self.request, self.principal = store, task_id, request, principal
        self.webhook_url = webhook_url

    def rows_with_hold(self, amount: int) -> tuple[NewRow, ...]:
        # A generation's row is committed with its hold: a submit waits for one commit, not two,
        # and a task exists exactly when its money is held. An edit's inputs (megabytes) are not
        # written under the ledger's lock: its row follows the hold, in a write of its own.
        if self.inputs:
            return ()
        return (self.store.new_row({**self.values, "hold_micros": amount}),)

    @functools.cached_property
    def _json(self) -> tuple[dict[str, Any], list[TaskInput]]:
        return request_to_json(self.request)

    @property
    def inputs(self) -> list[TaskInput]:
        return self._json[1]

    @functools.cached_property
    def values(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key_id": self.principal.key_id,
            "operation": self.request.operation,
            "model": self.request.public_model,
            "status": "queued",
            "request": self._json[0],
            "principal": principal_to_json(self.principal),
            "hold_micros": None,
            "created_at": time.time(),
            "webhook_url": self.webhook_url,
        }


def new_task_state(values: dict[str, Any]) -> TaskState:
    """The row just inserted, as the store would read it back."""
    defaults: dict[str, Any] = {
        "started_at": None,
        "completed_at": None,
        "runner_id": None,
        "lease_until": None,
        "claims": 0,
        "cancel_requested": False,
        "partial_images_received": 0,
        "result": None,
        "error": None,
        "webhook_state": None,
        "webhook_id": None,
        "webhook_attempts": 0,
    }
    fields: dict[str, Any] = {name: values.get(name, defaults.get(name)) for name in TaskState.__slots__}
    return TaskState(**fields)


def _ended_copy(task: TaskState, status: str) -> TaskState:
    ended = TaskState(*(getattr(task, name) for name in TaskState.__slots__))
    ended.status, ended.completed_at = status, time.time()
    return ended
