"""The bounded pool for heavy image work: bounded, and small work never queues behind it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from imagegate.media import work
from imagegate.media.work import SMALL_WORK_BYTES, run_image_work, run_sized_work


@pytest.fixture
def two_threads() -> Iterator[None]:
    work.configure(2)
    yield
    work.configure(0)


class Tracker:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.threads: set[str] = set()

    def job(self, seconds: float) -> str:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.threads.add(threading.current_thread().name)
        time.sleep(seconds)
        with self.lock:
            self.running -= 1
        return "done"


async def test_heavy_work_runs_on_a_bounded_number_of_threads(two_threads: None) -> None:
    tracker = Tracker()
    results = await asyncio.gather(*(run_image_work(tracker.job, 0.05) for _ in range(8)))
    assert results == ["done"] * 8
    assert tracker.peak == 2
    assert all(name.startswith("image-work") for name in tracker.threads)


async def test_small_work_does_not_wait_behind_heavy_work(two_threads: None) -> None:
    tracker = Tracker()
    heavy = [asyncio.ensure_future(run_image_work(tracker.job, 0.4)) for _ in range(6)]  # 1.2 s of queue
    await asyncio.sleep(0.05)
    started = time.monotonic()
    assert await run_sized_work(1024, tracker.job, 0.0) == "done"
    assert time.monotonic() - started < 0.2
    # The same job declared heavy waits its turn.
    started = time.monotonic()
    await run_sized_work(SMALL_WORK_BYTES + 1, tracker.job, 0.0)
    assert time.monotonic() - started > 0.6
    await asyncio.gather(*heavy)


async def test_the_event_loop_keeps_answering_while_the_pool_is_busy(two_threads: None) -> None:
    def burn() -> None:
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            sum(range(1000))

    heavy = asyncio.gather(*(run_image_work(burn) for _ in range(4)))
    started = time.monotonic()
    await asyncio.sleep(0.01)
    assert time.monotonic() - started < 0.2
    await heavy


def test_default_size_is_half_the_cpus() -> None:
    work.configure(0)
    assert work.pool_threads() == work.default_threads() >= 1
