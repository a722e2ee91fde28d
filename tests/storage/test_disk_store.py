"""The folder store: content-addressed puts, streamed reads, and deleting whole days."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from pathlib import Path

import pytest

from imagegate.settings import load_settings
from imagegate.storage.base import StoredImage, parse_key, retention_cutoff
from imagegate.storage.disk import DiskStore
from imagegate.storage.factory import open_store
from imagegate.storage.retention import collect_garbage
from tests.conftest import image_bytes

NOW = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.UTC)


def plant(root: Path, day: str, count: int) -> list[StoredImage]:
    """Images stored on ``day``, written as the store writes them."""
    images = []
    for index in range(count):
        data = f"{day}-{index}".encode()
        image = parse_key(f"{day}/{hashlib.sha256(data).hexdigest()}.png")
        assert image is not None
        (root / day).mkdir(parents=True, exist_ok=True)
        (root / image.key).write_bytes(data)
        images.append(image)
    return images


async def test_put_is_content_addressed_and_reads_back(tmp_path: Path) -> None:
    store = DiskStore(tmp_path)
    data = image_bytes()
    first = await store.put(data, "png")
    second = await store.put(data, "png")
    assert first == second
    assert first.digest == hashlib.sha256(data).hexdigest()
    assert await store.days() and len(await asyncio.to_thread(lambda: list(tmp_path.rglob("*.png")))) == 1
    assert await store.get(first) == data
    body = await store.open(first)
    assert body is not None and body.size == len(data)
    assert b"".join([chunk async for chunk in body.chunks]) == data
    assert await store.exists(first)


async def test_missing_image_reads_as_none(tmp_path: Path) -> None:
    store = DiskStore(tmp_path)
    image = parse_key(f"20260101/{'0' * 64}.png")
    assert image is not None
    assert await store.get(image) is None
    assert await store.open(image) is None
    assert not await store.exists(image)


def test_keys_cannot_leave_the_store() -> None:
    bad = ("../etc/passwd", "20260101/../../x.png", f"2026010/{'a' * 64}.png", f"20260101/{'A' * 64}.png")
    for key in bad:
        assert parse_key(key) is None


def test_retention_cutoff_counts_whole_utc_days() -> None:
    assert retention_cutoff(0, NOW) is None
    assert retention_cutoff(1, NOW) == "20261120"
    assert retention_cutoff(30, NOW) == "20261022"


async def test_gc_deletes_days_before_the_cutoff_only(tmp_path: Path) -> None:
    store = DiskStore(tmp_path)
    old = plant(tmp_path, "20261101", 3)
    kept = plant(tmp_path, "20261115", 2)
    (tmp_path / "not-a-day").mkdir()

    dry = await collect_garbage(store, 10, dry_run=True, now=NOW)
    assert (dry.images, dry.days, dry.cutoff) == (3, ["20261101"], "20261111")
    assert all([await store.exists(image) for image in old])

    report = await collect_garbage(store, 10, now=NOW)
    assert report.images == 3 and report.bytes == sum(len(f"20261101-{i}") for i in range(3))
    assert not any([await store.exists(image) for image in old])
    assert all([await store.exists(image) for image in kept])
    assert not (tmp_path / "20261101").exists()
    assert (tmp_path / "not-a-day").is_dir()
    assert (await collect_garbage(store, 10, now=NOW)).images == 0


async def test_gc_with_retention_off_deletes_nothing(tmp_path: Path) -> None:
    store = DiskStore(tmp_path)
    plant(tmp_path, "20000101", 1)
    report = await collect_garbage(store, 0, now=NOW)
    assert report.cutoff is None and report.images == 0
    assert await store.days() == ["20000101"]


def test_factory_chooses_the_store_and_refuses_what_cannot_work(tmp_path: Path) -> None:
    store = open_store(load_settings(data_dir=tmp_path))
    assert isinstance(store, DiskStore) and store.root == (tmp_path / "images").resolve()
    store = open_store(load_settings(data_dir=tmp_path, storage_url=f"file://{tmp_path}/elsewhere"))
    assert isinstance(store, DiskStore) and store.root == (tmp_path / "elsewhere").resolve()
    with pytest.raises(ValueError, match="presigned"):
        open_store(load_settings(data_dir=tmp_path, storage_urls="presigned"))
    with pytest.raises(ValueError, match="PUBLIC_URL"):
        open_store(load_settings(data_dir=tmp_path, storage_urls="public"))
    with pytest.raises(ValueError, match="file:///path or s3://"):
        open_store(load_settings(data_dir=tmp_path, storage_url="ftp://host/x"))


async def test_url_modes(tmp_path: Path) -> None:
    image = parse_key(f"20261121/{'a' * 64}.webp")
    assert image is not None
    gateway = open_store(load_settings(data_dir=tmp_path))
    assert await gateway.url_for(image, "https://gw.example/") == f"https://gw.example/files/{image.key}"
    public = open_store(
        load_settings(data_dir=tmp_path, storage_urls="public", storage_public_url="https://cdn.example/img/")
    )
    assert await public.url_for(image, "https://gw.example") == f"https://cdn.example/img/{image.key}"
