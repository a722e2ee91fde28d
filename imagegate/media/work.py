"""A bounded pool for CPU-heavy image work, so big requests cannot starve small ones.

``asyncio.to_thread`` shares one executor (CPUs + 4 threads) among everything. Four edits of
16 large PNGs each put 64 decodes of ~0.5 s in its queue, and the few milliseconds a small
generation needs there waited behind all of them (19.5 s seen). Work that grows with what a
client sends goes here instead: a process-wide pool of a few threads (half the CPUs by
default; ``IMAGEGATE_IMAGE_WORK_THREADS``), leaving the other cores, the event loop and the
default executor to everything else. Heavy requests queue behind each other, not in front of
small ones::

    image = await run_image_work(load_input_image, data, param="image", max_bytes=..., max_pixels=...)

Work whose size is known up front can say so, and skips the queue when it is small::

    stored = await run_sized_work(len(data), store_sync, data)

Pillow and hashlib release the GIL while they decode, encode and hash, so the threads run in
parallel with the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

#: Jobs touching at most this many bytes (data or decoded pixels) are small: a 2048x2048 RGBA
#: image. They run at once on asyncio's default threads.
SMALL_WORK_BYTES = 16 * 1024 * 1024

_pool: ThreadPoolExecutor | None = None
_threads = 0


def default_threads() -> int:
    return max(1, (os.cpu_count() or 2) // 2)


def configure(threads: int) -> None:
    """Size the pool (0: the default) before first use; a later call replaces an idle pool."""
    global _pool, _threads
    wanted = threads or default_threads()
    if _pool is not None and wanted != _threads:
        _pool.shutdown(wait=False)
        _pool = None
    _threads = wanted


def pool_threads() -> int:
    return _threads or default_threads()


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=pool_threads(), thread_name_prefix="image-work")
    return _pool


async def run_image_work(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``fn`` in the bounded pool and wait for it without blocking the event loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor(), functools.partial(fn, *args, **kwargs))


async def run_sized_work(size: int, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``fn``, which touches about ``size`` bytes: at once when small, else in the pool."""
    if size <= SMALL_WORK_BYTES:
        return await asyncio.to_thread(fn, *args, **kwargs)
    return await run_image_work(fn, *args, **kwargs)
