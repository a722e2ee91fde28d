"""Where hosted images live. The store is content-addressed: the name is the bytes' sha256."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

# `/files/{day}/{sha256}.{ext}`: the only names a store ever hands out or serves.
STORED_NAME = re.compile(r"^(?P<day>\d{8})/(?P<digest>[0-9a-f]{64})\.(?P<ext>png|jpeg|webp)$")

CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


@dataclass(frozen=True, slots=True)
class StoredImage:
    key: str  # "20261121/3f2a…9c.webp"
    digest: str
    ext: str

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.ext]


def parse_key(key: str) -> StoredImage | None:
    """The stored image a key names, or None for anything that is not a store name."""
    match = STORED_NAME.match(key)
    if not match:
        return None
    return StoredImage(key=key, digest=match["digest"], ext=match["ext"])


class ImageStore(ABC):
    @abstractmethod
    async def put(self, data: bytes, ext: str) -> StoredImage:
        """Store ``data`` (identical bytes are stored once) and return its key."""

    @abstractmethod
    def local_path(self, image: StoredImage) -> Path | None:
        """The file to serve for a key, or None when it is not stored here."""

    @abstractmethod
    async def check(self) -> None:
        """Raise when the store cannot be written (readiness probe)."""

    async def free_bytes(self) -> int | None:
        """Space left for new images, or None where the store has no such limit (readiness)."""
        return None
