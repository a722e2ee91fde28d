"""Runs queued tasks in this process: claim with a lease, run through the pipeline, store the end.

    runner = TaskRunner(store, pipeline, billing, request_log, settings, renderer)
    await runner.start()        # every `serve` process runs one
    ...
    await runner.stop()         # running tasks go back to the queue, their holds kept

At most ``IMAGEGATE_TASK_CONCURRENCY`` tasks run here at once, and only one while submits wait
for a saturated process (``_slots``: the burst is answered first). Each claimed task holds a lease
(``task_lease_s``) that one loop renews for all of them; a process that dies stops renewing, and
any runner claims its tasks once the lease ran out (well within 60 s). A reclaimed task is run
again only while its hold is still open in the ledger; one already charged (the process died
after settling, before storing the end) is marked failed, so nothing is ever charged twice.
Every write of a runner is conditional on the row still being its own, so a runner that lost its
lease (stalled past it) can never overwrite the runner that took over.

Money is the pipeline's: the hold taken at submit is rebuilt as a :class:`TaskMeter` and handed to
``pipeline.run(meter=)``, which settles it when the images are stored or releases it on failure
or cancellation. When the run is abandoned without an end (shutdown, lease lost) the meter is
*detached* first, so the hold stays taken for whoever runs the task next.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncGenerator, Iterator
from typing import Any, Protocol, cast

from imagegate import metrics
from imagegate.billing.ledger import Hold
from imagegate.billing.meter import Billing, Meter
from imagegate.db.request_logs import RequestLogWriter
from imagegate.db.tasks import TaskState, TaskStore
from imagegate.domain import Generated, GenerationEvent, ImageRequest, PartialImage
from imagegate.errors import GatewayError, UpstreamFailed, UpstreamTimeout
from imagegate.observability import RequestRecord
from imagegate.services.cpu_use import CpuUse, MachineCpu
from imagegate.services.generation import GenerationPipeline
from imagegate.services.tasks_codec import principal_from_json, request_from_json, task_object
from imagegate.services.tasks_events import Event, TaskEvents
from imagegate.services.tasks_webhooks import webhook_fields
from imagegate.settings import Settings

logger = logging.getLogger("imagegate.tasks")

#: How long a freed slot waits for others before they are claimed for together (see _claim_loop).
CLAIM_GATHER_S = 0.005
#: The process's CPU time per wall second above which the runner yields to submits, and below
#: which it stops yielding (apart, so that it does not flip at every look; see _slots).
BUSY_SHARE, CALM_SHARE = 0.8, 0.5
#: The machine's busy share of all its cores at which a process using more than CALM_SHARE
#: yields too: its submits then wait for cores that others hold.
MACHINE_BUSY_SHARE = 0.8
#: Tasks that may run while the runner yields to submits; how soon it looks again.
YIELD_SLOTS = 1
YIELD_RECHECK_S = 0.05


class TaskRenderer(Protocol):
    """The wire shapes a task stores and streams; the API layer provides them (``api.tasks``)."""

    def result(self, generated: Generated) -> dict[str, Any]: ...
    def partial(self, request: ImageRequest, partial: PartialImage) -> Event: ...
    def completed(self, request: ImageRequest, generated: Generated) -> list[Event]: ...
    def error(self, error: GatewayError) -> Event: ...


class TaskMeter(Meter):
    """A task's hold, rebuilt from the task row; ``detach()`` keeps it taken when the run stops."""

    detached = False

    def detach(self) -> None:
        self.detached = True

    async def close(self) -> None:
        if not self.detached:
            await super().close()


class _Running:
    __slots__ = ("job", "meter", "reason")

    def __init__(self) -> None:
        self.job: asyncio.Task[None] | None = None
        self.meter: TaskMeter | None = None
        #: Why the run is being stopped: "cancel" (by the client) or "abandon" (shutdown, lease lost).
        self.reason: str | None = None


class TaskRunner:
    def __init__(
        self,
        store: TaskStore,
        pipeline: GenerationPipeline,
        billing: Billing,
        request_log: RequestLogWriter,
        settings: Settings,
        renderer: TaskRenderer,
    ) -> None:
        self.store = store
        self.pipeline = pipeline
        self.billing = billing
        self.request_log = request_log
        self.settings = settings
        self.renderer = renderer
        self.runner_id = "run_" + secrets.token_hex(8)
        self.events = TaskEvents()
        self.concurrency = settings.task_concurrency
        self.lease_s = settings.task_lease_s
        self._running: dict[str, _Running] = {}
        self._wake = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._stopping = False
        #: Submits being answered in this process right now (see answering_submit).
        self.submitting = 0
        self._cpu_use = CpuUse()
        self._machine_cpu = MachineCpu()
        self._yielding = False

    # -- life ---------------------------------------------------------------------------------

    async def start(self) -> None:
        self._loops = [
            asyncio.create_task(self._claim_loop(), name="tasks-claim"),
            asyncio.create_task(self._renew_loop(), name="tasks-renew"),
        ]

    async def stop(self) -> None:
        self._stopping = True
        for loop in self._loops:
            loop.cancel()
        for loop in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        jobs = []
        for running in self._running.values():
            running.reason = "abandon"
            if running.meter is not None:
                running.meter.detach()
            if running.job is not None:
                running.job.cancel()
                jobs.append(running.job)
        for job in jobs:
            with contextlib.suppress(asyncio.CancelledError):
                await job

    def wake(self) -> None:
        """A task was submitted here: claim now rather than at the next poll."""
        self._wake.set()

    @contextlib.contextmanager
    def answering_submit(self) -> Iterator[None]:
        """Held while a submit is answered here: the runner yields the CPU to it (``_slots``)."""
        self.submitting += 1
        try:
            yield
        finally:
            self.submitting -= 1

    @property
    def running(self) -> int:
        return len(self._running)

    def cancel_local(self, task_id: str) -> bool:
        """Stop a task running in this process at once (the client cancelled it)."""
        running = self._running.get(task_id)
        if running is None or running.job is None:
            return False
        running.reason = "cancel"
        running.job.cancel()
        return True

    # -- loops --------------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        expired_checked = -float("inf")
        while True:
            slots = self._slots()
            free = slots - len(self._running)
            claimed: list[TaskState] = []
            if free > 0:
                # Leases run out on their own clock: looking for them once per poll interval
                # is soon enough (reclaimed within lease + poll), and spares every other claim
                # a second statement.
                check_expired = time.monotonic() - expired_checked >= self.settings.task_poll_s
                try:
                    claimed = await self.store.claim(
                        self.runner_id, limit=free, lease_s=self.lease_s, expired=check_expired
                    )
                    if check_expired:
                        expired_checked = time.monotonic()
                except Exception:
                    logger.exception("claiming tasks failed")
            for task in claimed:
                running = _Running()
                self._running[task.id] = running
                running.job = asyncio.create_task(self._run(task, running), name=task.id)
            if claimed and len(claimed) == free:
                continue  # more may be waiting: claim again as soon as a slot frees
            self._wake.clear()
            wait_s = self.settings.task_poll_s if slots == self.concurrency else YIELD_RECHECK_S
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    await self._wake.wait()
            if self._running:
                # Slots free one at a time as tasks end; a claim for each alone cost one claim
                # per task under a burst. A moment's pause lets the ones ending together share it.
                await asyncio.sleep(CLAIM_GATHER_S)

    def _slots(self) -> int:
        """How many tasks may run now: ``concurrency``, except while submits wait for the CPU.

        Tasks are the background: their clients already have an answer and poll. A submit is a
        client waiting. So while submits are being answered and the CPU is saturated, the
        runner starts no more than YIELD_SLOTS tasks and looks again every YIELD_RECHECK_S,
        until the process is calm (below CALM_SHARE of a core) or no submit waits. Saturated:
        this process used more than BUSY_SHARE of a core over the last moment (its database and
        file threads count, as they share the interpreter's lock with it), or more than
        CALM_SHARE while the machine's cores were MACHINE_BUSY_SHARE busy (another process of
        the gateway, the database). Tasks waiting on their upstream leave the process idle, so
        this never holds them back. A burst of 10,000 submits beside 16 running tasks was
        answered with p99 71 ms; yielding, 39 to 47 ms, and the last task ended no later; two
        processes on one PostgreSQL, each at ~0.75 of a core on a full machine: p99 99 to 114 ms
        before the machine counted, 61 to 100 ms after (bench/tasks.py).
        """
        process = self._cpu_use.share()
        machine = self._machine_cpu.share()
        if self.submitting == 0 or process < CALM_SHARE:
            self._yielding = False
        elif process >= BUSY_SHARE or machine >= MACHINE_BUSY_SHARE:
            self._yielding = True
        return min(self.concurrency, YIELD_SLOTS) if self._yielding else self.concurrency

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(min(self.lease_s / 3, 1.0))
            ids = list(self._running)
            try:
                kept = await self.store.renew(self.runner_id, ids, self.lease_s)
            except Exception:
                logger.exception("renewing task leases failed")
                continue
            for task_id in ids:
                running = self._running.get(task_id)
                if running is None or running.job is None or running.job.done():
                    continue
                if task_id not in kept:
                    # Finished meanwhile, or taken over after our lease ran out: hands off the money.
                    if running.reason is None:
                        running.reason = "abandon"
                        if running.meter is not None:
                            running.meter.detach()
                        running.job.cancel()
                elif kept[task_id] and running.reason is None:
                    running.reason = "cancel"
                    running.job.cancel()

    # -- one task -----------------------------------------------------------------------------

    async def _run(self, task: TaskState, running: _Running) -> None:
        try:
            await self._run_task(task, running)
        except asyncio.CancelledError:
            pass
        except Exception:
            logger.exception("task %s failed unexpectedly", task.id)
        finally:
            self._running.pop(task.id, None)
            self.events.close(task.id)
            if not self._stopping:
                self._wake.set()

    async def _run_task(self, task: TaskState, running: _Running) -> None:
        if task.claims > 1 and task.hold_micros is not None:
            money = await self.store.money_state(task.id)
            if money != "open":
                # Its runner died after the hold was settled (or given back): never run it again.
                error = UpstreamFailed(
                    "The task's runner stopped before it could store the result; the task was not run "
                    "again so that nothing is charged twice.",
                    code="task_interrupted",
                )
                await self._end(task, "failed", error=error.to_body()["error"])
                return
        if task.cancel_requested:
            await self._release(task)
            await self._end(task, "cancelled")
            return
        request = request_from_json(task.request, await self.store.inputs(task.id) if task.has_inputs else [])
        principal = principal_from_json(task.principal)
        meter = TaskMeter(self.billing, request, principal)
        if task.hold_micros is not None:
            meter.hold = Hold(task.key_id, task.id, task.hold_micros, recorded=True)
        running.meter = meter
        record = RequestRecord(
            request_id=task.id,
            method="POST",
            endpoint=f"/v1/images/{'edits' if task.operation == 'edit' else 'generations'}/async",
            key_id=task.key_id,
            group=principal.group,
        )
        started_at, started = time.time(), time.perf_counter()
        self.events.open(task.id)
        partials = 0
        try:
            # keep_bytes: the task's completed events carry each image's base64, as a stream's do.
            run = self.pipeline.run(request, principal, record, meter=meter, keep_bytes=True)
            events = cast(AsyncGenerator[GenerationEvent], run)  # run() is an async generator
            # aclosing: a cancel landing between two events still runs the pipeline's cleanup
            # (the hold's release) now, not whenever the generator is collected.
            async with asyncio.timeout(self._run_timeout(request)), contextlib.aclosing(events):
                async for event in events:
                    if isinstance(event, PartialImage):
                        partials += 1
                        self.events.push(task.id, self.renderer.partial(request, event))
                        await self.store.count_partial(task.id, self.runner_id, partials)
                    elif isinstance(event, Generated):
                        result = self.renderer.result(event)
                        completed = self.renderer.completed(request, event)
                        if await self._end(task, "completed", result=result):
                            for frame in completed:
                                self.events.push(task.id, frame)
                        record.status = 200
                    del event
        except GatewayError as error:
            await self._fail(task, error, record)
        except TimeoutError:
            timeout = UpstreamTimeout(
                f"The task ran longer than its limit of {self._run_timeout(request):g} s and was stopped.",
                code="task_timeout",
            )
            record.failed(timeout.type, timeout.code, timeout.message)
            await self._fail(task, timeout, record)
        except asyncio.CancelledError:
            if running.reason == "cancel":
                # pipeline.run released the hold (the meter was not detached).
                await self._end(task, "cancelled", from_status="processing")
                record.status = 499
            elif running.reason == "abandon" and self._stopping:
                await self.store.requeue(task.id, self.runner_id)
                return
            raise
        finally:
            if record.status:
                record.latency_ms = round((time.perf_counter() - started) * 1000, 1)
                self.request_log.submit(record, started_at)
                metrics.observe_record(record)  # no HTTP middleware sees a task's run

    async def _fail(self, task: TaskState, error: GatewayError, record: RequestRecord) -> None:
        record.status = error.status
        if await self._end(task, "failed", error=error.to_body()["error"]):
            self.events.push(task.id, self.renderer.error(error))

    async def _end(
        self,
        task: TaskState,
        status: str,
        *,
        result: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
        from_status: str = "processing",
    ) -> bool:
        ended = TaskState(**{**_fields(task), "status": status, "result": result, "error": error})
        ended.completed_at = time.time()
        return await self.store.finish(
            task.id,
            runner_id=self.runner_id,
            from_status=from_status,
            status=status,
            result=result,
            error=error,
            webhook=webhook_fields(ended, task_object(ended), self.settings),
            inputs=task.has_inputs,
        )

    async def _release(self, task: TaskState) -> None:
        if task.hold_micros is not None and self.billing.ledger is not None:
            await self.billing.ledger.release(Hold(task.key_id, task.id, task.hold_micros, recorded=True))

    def _run_timeout(self, request: ImageRequest) -> float:
        """The longest a run may take: every channel attempt at its timeout, plus input and delivery time."""
        if self.settings.task_run_timeout_s is not None:
            return self.settings.task_run_timeout_s
        channels = self.pipeline.catalog.channels_for(request.model)
        longest = max((channel.config.timeout_s for channel in channels), default=300.0)
        return longest * self.settings.route_max_attempts + 60.0


def _fields(task: TaskState) -> dict[str, Any]:
    return {name: getattr(task, name) for name in TaskState.__slots__}
