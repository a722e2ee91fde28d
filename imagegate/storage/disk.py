"""The image store in a local folder: one file per distinct image per day, ``ROOT/day/hash.ext``."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from imagegate.storage.base import DAY, ImageBody, ImageStore, StoredImage, UrlPolicy, make_key

_CHUNK = 256 * 1024


class DiskStore(ImageStore):
    def __init__(self, root: Path, urls: UrlPolicy | None = None, retention_days: int = 0) -> None:
        super().__init__(urls, retention_days)
        self.root = root.resolve()

    async def put(self, data: bytes, ext: str) -> StoredImage:
        # Hashing and writing megabytes would stall every other request if done on the loop.
        return await asyncio.to_thread(self._put_sync, data, ext)

    def _put_sync(self, data: bytes, ext: str) -> StoredImage:
        image = make_key(hashlib.sha256(data).hexdigest(), ext)
        path = self.root / image.key
        if path.exists():
            return image
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a reader never sees half a file and racing writers are harmless.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return image

    def local_path(self, image: StoredImage) -> Path | None:
        path = self.root / image.key
        return path if path.is_file() else None

    async def exists(self, image: StoredImage) -> bool:
        return self.local_path(image) is not None

    async def get(self, image: StoredImage) -> bytes | None:
        return await asyncio.to_thread(self._read_sync, self.root / image.key)

    @staticmethod
    def _read_sync(path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    async def open(self, image: StoredImage) -> ImageBody | None:
        path = self.root / image.key
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return None
        return ImageBody(size=size, chunks=_read_chunks(path), path=path)

    async def days(self) -> list[str]:
        def scan() -> list[str]:
            if not self.root.is_dir():
                return []
            return [entry.name for entry in os.scandir(self.root) if DAY.match(entry.name) and entry.is_dir()]

        return await asyncio.to_thread(scan)

    async def delete_day(self, day: str, *, dry_run: bool = False) -> tuple[int, int]:
        if not DAY.match(day):
            raise ValueError(f"not a day: {day!r}")
        return await asyncio.to_thread(self._delete_day_sync, self.root / day, dry_run)

    @staticmethod
    def _delete_day_sync(folder: Path, dry_run: bool) -> tuple[int, int]:
        images = size = 0
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            return 0, 0
        for entry in entries:
            if entry.name.startswith("."):
                continue  # a writer's temporary file; removed with the folder below
            try:
                size += entry.stat(follow_symlinks=False).st_size
                if not dry_run:
                    os.unlink(entry.path)
            except FileNotFoundError:
                continue  # another sweeper got there first
            images += 1
        if not dry_run:
            shutil.rmtree(folder, ignore_errors=True)
        return images, size

    async def check(self) -> None:
        await asyncio.to_thread(self._check_sync)

    async def free_bytes(self) -> int:
        def free() -> int:
            self.root.mkdir(parents=True, exist_ok=True)
            return shutil.disk_usage(self.root).free

        return await asyncio.to_thread(free)

    def _check_sync(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=self.root, prefix=".ready-"):
            pass


async def _read_chunks(path: Path) -> AsyncIterator[bytes]:
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        while chunk := await asyncio.to_thread(handle.read, _CHUNK):
            yield chunk
    finally:
        handle.close()
