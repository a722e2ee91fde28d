"""The S3 store against a real S3-compatible server on loopback (moto)."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from imagegate.settings import load_settings
from imagegate.storage.base import UrlPolicy, parse_key
from imagegate.storage.factory import open_store
from imagegate.storage.retention import collect_garbage
from imagegate.storage.s3 import S3Store
from tests.conftest import image_bytes
from tests.storage.conftest import S3RVER_KEY, S3Bucket, S3Server


def make_store(bucket: S3Bucket, **kwargs: object) -> S3Store:
    return S3Store(bucket.url(), endpoint=bucket.endpoint, **kwargs)  # type: ignore[arg-type]


async def test_put_lands_in_the_bucket_under_the_prefix_with_its_type(s3_bucket: S3Bucket) -> None:
    store = make_store(s3_bucket)
    data = image_bytes(fmt="WEBP")
    stored = await store.put(data, "webp")
    assert await store.put(data, "webp") == stored  # identical bytes, one object
    assert s3_bucket.object_keys() == [f"images/{stored.key}"]
    head = s3_bucket.server.client().head_object(Bucket=s3_bucket.name, Key=f"images/{stored.key}")
    assert head["ContentType"] == "image/webp"
    assert "immutable" in head["CacheControl"]
    assert stored.digest == hashlib.sha256(data).hexdigest()
    await store.aclose()


async def test_reads_stream_the_stored_bytes(s3_bucket: S3Bucket) -> None:
    store = make_store(s3_bucket)
    data = bytes(range(256)) * 4096 * 3  # 3 MiB: several chunks
    stored = await store.put(data, "png")
    assert await store.get(stored) == data
    body = await store.open(stored)
    assert body is not None and body.size == len(data) and body.path is None
    chunks = [chunk async for chunk in body.chunks]
    assert len(chunks) > 1 and b"".join(chunks) == data
    assert await store.exists(stored)
    missing = parse_key(f"20260101/{'0' * 64}.png")
    assert missing is not None
    assert await store.get(missing) is None and await store.open(missing) is None
    assert not await store.exists(missing)


async def test_presigned_url_serves_the_image_then_expires(
    signing_s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3RVER_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3RVER_KEY)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    policy = UrlPolicy(mode="presigned", presign_s=2)
    store = S3Store("s3://signed/images", endpoint=signing_s3_server.endpoint, urls=policy)
    stored = await store.put(image_bytes(size=(32, 16)), "png")
    url = await store.url_for(stored, "http://gateway.invalid")
    assert url.startswith(f"{signing_s3_server.endpoint}/signed/images/{stored.key}?")
    assert "X-Amz-Expires=2&" in url

    def fetch(link: str) -> bytes:
        with urllib.request.urlopen(link, timeout=5) as response:
            return bytes(response.read())

    assert Image.open(io.BytesIO(await asyncio.to_thread(fetch, url))).size == (32, 16)
    await asyncio.sleep(3.2)
    with pytest.raises(urllib.error.HTTPError) as expired:
        await asyncio.to_thread(fetch, url)
    assert expired.value.code == 403


@pytest.mark.slow
async def test_gc_deletes_old_days_in_batches_and_keeps_the_rest(s3_bucket: S3Bucket) -> None:
    store = make_store(s3_bucket)
    client = s3_bucket.server.client()
    # More than one DeleteObjects call's worth (1000 keys).
    old = [f"images/20261101/{hashlib.sha256(str(i).encode()).hexdigest()}.png" for i in range(1003)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: client.put_object(Bucket=s3_bucket.name, Key=key, Body=b"x"), old))
    client.put_object(Bucket=s3_bucket.name, Key="images/20261101/README.txt", Body=b"not ours")
    kept = await store.put(image_bytes(), "png")  # today
    now = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)

    dry = await collect_garbage(store, 5, dry_run=True, now=now)
    assert (dry.images, dry.bytes, dry.days) == (1003, 1003, ["20261101"])
    assert len(s3_bucket.object_keys()) == 1005

    report = await collect_garbage(store, 5, now=now)
    assert report.images == 1003
    assert s3_bucket.object_keys() == sorted(["images/20261101/README.txt", f"images/{kept.key}"])


async def test_readiness_fails_for_a_missing_bucket(s3_bucket: S3Bucket) -> None:
    await make_store(s3_bucket).check()
    missing = S3Store(f"s3://{s3_bucket.name}-absent/x", endpoint=s3_bucket.endpoint)
    with pytest.raises(Exception, match=r"(?i)bucket"):
        await missing.check()


def test_factory_opens_s3_from_settings(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path,
        storage_url=s3_bucket.url("a/b"),
        s3_endpoint=s3_bucket.endpoint,
        storage_urls="presigned",
        presign_s=60,
    )
    store = open_store(settings)
    assert isinstance(store, S3Store)
    assert (store.bucket, store.prefix, store.urls.mode, store.urls.presign_s) == (
        s3_bucket.name,
        "a/b",
        "presigned",
        60,
    )
    with pytest.raises(ValueError, match="s3://bucket/prefix"):
        S3Store("s3:///nobucket")
