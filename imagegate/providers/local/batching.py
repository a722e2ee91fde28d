"""Jobs, their way back to the event loop, and the micro-batcher that groups them.

A :class:`Job` is one request's share of a pipeline call: its prompt and one seed per image.
Jobs with the same :class:`BatchKey` (size, steps, guidance) can run in one call; the
:class:`Batcher` hands the worker thread the oldest job plus whatever matching jobs arrive
within a short window, up to a number of images.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class BatchKey:
    width: int
    height: int
    steps: int
    guidance_scale: float
    #: Edits carry their own input image, so each gets a unique key and runs alone.
    edit_id: int | None = None


@dataclass(slots=True)
class Partial:
    index: int
    image: Any  # PIL.Image.Image


@dataclass(slots=True)
class Done:
    images: list[Any]  # PIL.Image.Image, one per seed


@dataclass(slots=True)
class Failed:
    error: BaseException


JobEvent = Partial | Done | Failed


class EventSink:
    """Delivers a worker thread's events to the asyncio queue of the request's own loop."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[JobEvent] = asyncio.Queue()

    def post(self, event: JobEvent) -> bool:
        try:
            self._loop.call_soon_threadsafe(self.queue.put_nowait, event)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            return False
        return True


@dataclass(eq=False, slots=True)
class Job:
    key: BatchKey
    prompt: str
    seeds: list[int]
    sink: EventSink
    partial_images: int = 0
    init_image: Any | None = None  # PIL.Image.Image for img2img
    strength: float = 1.0
    cancelled: threading.Event = field(default_factory=threading.Event)
    #: Denoising steps run so far (written by the worker thread).
    steps_run: int = 0

    def cancel(self) -> None:
        self.cancelled.set()

    def partial_steps(self, total: int) -> list[int]:
        """Step indices after which a preview is sent: evenly spread, never the last step."""
        wanted = self.partial_images
        if wanted <= 0 or total <= 1:
            return []
        return sorted({math.ceil((j + 1) * (total - 1) / wanted) - 1 for j in range(wanted)})


class Batcher:
    """A thread-safe queue of jobs that hands them out in same-key groups.

    Usage (the worker thread)::

        while (batch := batcher.take()) is not None:
            run(batch)
    """

    def __init__(self, max_images: int, window_s: float) -> None:
        self.max_images = max_images
        self.window_s = window_s
        self._pending: deque[Job] = deque()
        self._cond = threading.Condition()
        self._closed = False

    @property
    def pending(self) -> int:
        """Jobs waiting for the worker."""
        with self._cond:
            return len(self._pending)

    def put(self, job: Job) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("the local model is shutting down")
            self._pending.append(job)
            self._cond.notify_all()

    def close(self) -> list[Job]:
        """Stop handing out work; returns the jobs that never ran."""
        with self._cond:
            self._closed = True
            left = list(self._pending)
            self._pending.clear()
            self._cond.notify_all()
        return left

    def take(self) -> list[Job] | None:
        """The next batch (blocking); None once closed."""
        with self._cond:
            first = self._next_live()
            while first is None:
                if self._closed:
                    return None
                self._cond.wait()
                first = self._next_live()
            batch = [first]
            if first.key.edit_id is not None:
                return batch
            images = len(first.seeds)
            deadline = time.monotonic() + self.window_s
            while images < self.max_images and not self._closed:
                images += self._gather(first.key, batch, images)
                remaining = deadline - time.monotonic()
                if images >= self.max_images or remaining <= 0:
                    break
                self._cond.wait(remaining)
            return batch

    def _next_live(self) -> Job | None:
        while self._pending:
            job = self._pending.popleft()
            if not job.cancelled.is_set():
                return job
        return None

    def _gather(self, key: BatchKey, batch: list[Job], images: int) -> int:
        """Move queued jobs of ``key`` that still fit into ``batch``; returns images added."""
        added = 0
        for job in list(self._pending):
            if job.cancelled.is_set():
                self._pending.remove(job)
            elif job.key == key and images + added + len(job.seeds) <= self.max_images:
                self._pending.remove(job)
                batch.append(job)
                added += len(job.seeds)
        return added
