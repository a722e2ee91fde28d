"""Retention: delete images past IMAGEGATE_IMAGE_RETENTION_DAYS, by whole days.

Keys start with the UTC day the image was stored, so expired images are found by listing
days, not by reading a table; the request log keeps its rows (their URLs then answer 410).

    report = await collect_garbage(store, retention_days=30)            # `imagegate storage gc`
    sweeper = RetentionSweeper(store, settings, engine); sweeper.start()  # in `serve`
    await sweeper.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.settings import Settings
from imagegate.storage.base import ImageStore, retention_cutoff
from imagegate.storage.lock import sweep_lock

log = logging.getLogger("imagegate.storage")


@dataclass
class GcReport:
    cutoff: str | None  # the first day kept; None when retention is off
    days: list[str] = field(default_factory=list)
    images: int = 0
    bytes: int = 0
    dry_run: bool = False


async def collect_garbage(
    store: ImageStore, retention_days: int, *, dry_run: bool = False, now: dt.datetime | None = None
) -> GcReport:
    """Delete (or, with ``dry_run``, count) every image stored before the retention cutoff."""
    report = GcReport(cutoff=retention_cutoff(retention_days, now), dry_run=dry_run)
    if report.cutoff is None:
        return report
    for day in sorted(await store.days()):
        if day >= report.cutoff:
            continue
        images, size = await store.delete_day(day, dry_run=dry_run)
        report.days.append(day)
        report.images += images
        report.bytes += size
    return report


class RetentionSweeper:
    """Runs `collect_garbage` every IMAGEGATE_STORAGE_GC_INTERVAL_S, one replica at a time."""

    def __init__(self, store: ImageStore, settings: Settings, engine: AsyncEngine | None) -> None:
        self.store = store
        self.settings = settings
        self.engine = engine
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.settings.image_retention_days > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name="storage-retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def sweep_once(self) -> GcReport | None:
        """One sweep under the deployment-wide lock; None when another process holds it."""
        async with sweep_lock(self.settings, self.engine) as held:
            if not held:
                return None
            return await collect_garbage(self.store, self.settings.image_retention_days)

    async def _run(self) -> None:
        while True:
            try:
                report = await self.sweep_once()
                if report is not None and report.images:
                    log.info(
                        "retention: deleted %d images (%d bytes) of %s",
                        report.images,
                        report.bytes,
                        ", ".join(report.days),
                    )
            except Exception:
                # A store outage must not end the loop: the next round tries again.
                log.exception("retention sweep failed")
            await asyncio.sleep(self.settings.storage_gc_interval_s)
