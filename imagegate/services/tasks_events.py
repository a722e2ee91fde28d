"""The live events of tasks running in this process, replayed from the start to late subscribers.

    hub = TaskEvents()
    hub.open("task_1"); hub.push("task_1", ("image_generation.partial_image", {...})); hub.close("task_1")
    async for event in hub.follow("task_1"): ...      # everything so far, then what comes, until close

Only tasks running here are kept, and only until they end: an ended task's final event is read
from its stored result instead (``api.tasks``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

Event = tuple[str, dict[str, Any]]


class _Log:
    __slots__ = ("changed", "closed", "events")

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.closed = False
        self.changed = asyncio.Event()


class TaskEvents:
    def __init__(self) -> None:
        self._logs: dict[str, _Log] = {}

    def open(self, task_id: str) -> None:
        self._logs[task_id] = _Log()

    def push(self, task_id: str, event: Event) -> None:
        log = self._logs.get(task_id)
        if log is not None:
            log.events.append(event)
            log.changed.set()

    def close(self, task_id: str) -> None:
        log = self._logs.pop(task_id, None)
        if log is not None:
            log.closed = True
            log.changed.set()

    def live(self, task_id: str) -> bool:
        return task_id in self._logs

    async def follow(self, task_id: str) -> AsyncIterator[Event]:
        """Every event of a task running here, from the first; ends when the task ends."""
        log = self._logs.get(task_id)
        if log is None:
            return
        sent = 0
        while True:
            while sent < len(log.events):
                yield log.events[sent]
                sent += 1
            if log.closed:
                return
            log.changed.clear()
            await log.changed.wait()
