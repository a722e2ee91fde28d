"""The image store on the local disk (the data dir): one file per distinct image."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path

from imagegate.storage.base import ImageStore, StoredImage


class DiskStore(ImageStore):
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    async def put(self, data: bytes, ext: str) -> StoredImage:
        # Hashing and writing megabytes would stall every other request if done on the loop.
        return await asyncio.to_thread(self._put_sync, data, ext)

    def _put_sync(self, data: bytes, ext: str) -> StoredImage:
        digest = hashlib.sha256(data).hexdigest()
        day = time.strftime("%Y%m%d", time.gmtime())
        image = StoredImage(key=f"{day}/{digest}.{ext}", digest=digest, ext=ext)
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
