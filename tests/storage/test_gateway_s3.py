"""The gateway on S3 storage, driven with the openai SDK: hosted URLs, retention and 404/410."""

from __future__ import annotations

import hashlib
import io
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from imagegate.cli.main import main
from tests.admin.helpers import wait_for_log
from tests.conftest import GatewayFactory, LiveGateway, free_port
from tests.storage.conftest import S3RVER_KEY, S3Bucket, S3Server

OLD_DAY = "20200101"


def s3_gateway(make_gateway: GatewayFactory, bucket: S3Bucket, **overrides: object) -> LiveGateway:
    return make_gateway(storage_url=bucket.url(), s3_endpoint=bucket.endpoint, **overrides)


def generate_url(gateway: LiveGateway) -> tuple[str, str]:
    """A demo image in url mode: its URL and the request id."""
    raw = gateway.client().images.with_raw_response.generate(
        model="demo", prompt="一只红色的狐狸 a red fox", size="1024x1024", response_format="url"
    )
    url = raw.parse().data[0].url
    assert url is not None
    return url, raw.headers["x-request-id"]


def plant_old_image(bucket: S3Bucket) -> str:
    """An image stored long ago, as the store would have written it; returns its /files/ path."""
    data = b"an old image"
    key = f"{OLD_DAY}/{hashlib.sha256(data).hexdigest()}.png"
    bucket.server.client().put_object(Bucket=bucket.name, Key=f"images/{key}", Body=data)
    return f"/files/{key}"


def test_an_image_made_in_url_mode_is_in_the_bucket_and_its_url_serves_it(
    make_gateway: GatewayFactory, s3_bucket: S3Bucket
) -> None:
    gateway = s3_gateway(make_gateway, s3_bucket)
    url, _ = generate_url(gateway)
    assert url.startswith(f"{gateway.url}/files/")
    key = url.split("/files/", 1)[1]
    assert s3_bucket.object_keys() == [f"images/{key}"]
    assert not (gateway.settings.data_dir / "images").exists()  # nothing on the local disk

    response = httpx.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.headers["etag"] == f'"{key.split("/")[1].split(".")[0]}"'
    assert int(response.headers["content-length"]) == len(response.content)
    assert Image.open(io.BytesIO(response.content)).size == (1024, 1024)
    assert hashlib.sha256(response.content).hexdigest() in key

    again = httpx.get(url, headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304
    ready = httpx.get(f"{gateway.url}/readyz").json()
    assert ready["checks"]["storage"] == "ok"


def test_expired_and_deleted_images_answer_410_and_404_and_the_log_keeps_its_rows(
    make_gateway: GatewayFactory, s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    old_path = plant_old_image(s3_bucket)
    # A long interval: this test runs `storage gc` itself rather than wait for the sweeper.
    gateway = s3_gateway(make_gateway, s3_bucket, storage_gc_interval_s=3600)
    url, request_id = generate_url(gateway)
    key = url.split("/files/", 1)[1]

    # Retention off: the old image is served like any other.
    assert httpx.get(f"{gateway.url}{old_path}").status_code == 200

    monkeypatch.setenv("IMAGEGATE_DATA_DIR", str(tmp_path / "cli"))
    monkeypatch.setenv("IMAGEGATE_STORAGE_URL", s3_bucket.url())
    monkeypatch.setenv("IMAGEGATE_S3_ENDPOINT", s3_bucket.endpoint)
    monkeypatch.setenv("IMAGEGATE_IMAGE_RETENTION_DAYS", "30")
    assert main(["storage", "gc", "--dry-run"]) == 0
    assert f"images/{old_path.removeprefix('/files/')}" in s3_bucket.object_keys()
    assert main(["storage", "gc"]) == 0
    assert s3_bucket.object_keys() == [f"images/{key}"]

    # A gateway with retention knows the old image expired: 410, not 404.
    strict = s3_gateway(make_gateway, s3_bucket, image_retention_days=30)
    gone = httpx.get(f"{strict.url}{old_path}")
    assert gone.status_code == 410
    assert gone.json()["error"]["code"] == "file_expired"
    assert httpx.get(url.replace(gateway.url, strict.url)).status_code == 200

    # Deleted by other means (or never stored): 404 with OpenAI's envelope.
    s3_bucket.server.client().delete_object(Bucket=s3_bucket.name, Key=f"images/{key}")
    missing = httpx.get(url)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "file_not_found"
    assert httpx.get(url, headers={"If-None-Match": f'"{key[9:73]}"'}).status_code == 404

    assert wait_for_log(gateway, request_id)["status"] == 200


def test_serve_sweeps_expired_images_in_the_background(
    make_gateway: GatewayFactory, s3_bucket: S3Bucket
) -> None:
    old_path = plant_old_image(s3_bucket)
    gateway = s3_gateway(make_gateway, s3_bucket, image_retention_days=7)
    url, _ = generate_url(gateway)
    deadline = time.monotonic() + 10
    while f"images/{old_path.removeprefix('/files/')}" in s3_bucket.object_keys():
        assert time.monotonic() < deadline, "the sweeper did not delete the expired image"
        time.sleep(0.1)
    assert httpx.get(url).status_code == 200
    assert httpx.get(f"{gateway.url}{old_path}").status_code == 410


def test_a_store_that_cannot_answer_is_a_503_not_a_404(
    make_gateway: GatewayFactory, s3_bucket: S3Bucket
) -> None:
    gateway = s3_gateway(make_gateway, s3_bucket)
    url, _ = generate_url(gateway)
    # The same bucket through an endpoint nothing listens on: the image may exist, the store is down.
    down = make_gateway(storage_url=s3_bucket.url(), s3_endpoint=f"http://127.0.0.1:{free_port()}")
    answer = httpx.get(url.replace(gateway.url, down.url), timeout=30)
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "storage_unavailable"
    assert httpx.get(f"{down.url}/readyz").json()["checks"]["storage"].startswith("error")


def test_presigned_mode_hands_out_links_that_work_then_expire(
    make_gateway: GatewayFactory, signing_s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, S3RVER_KEY)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    gateway = make_gateway(
        storage_url="s3://signed/images",
        s3_endpoint=signing_s3_server.endpoint,
        storage_urls="presigned",
        presign_s=2,
    )
    url, _ = generate_url(gateway)
    assert url.startswith(f"{signing_s3_server.endpoint}/signed/images/") and "X-Amz-Expires=2&" in url
    assert Image.open(io.BytesIO(httpx.get(url).content)).size == (1024, 1024)
    time.sleep(3.2)
    assert httpx.get(url).status_code == 403


def test_public_mode_hands_out_links_under_the_public_base(
    make_gateway: GatewayFactory, s3_bucket: S3Bucket
) -> None:
    gateway = s3_gateway(
        make_gateway, s3_bucket, storage_urls="public", storage_public_url="https://cdn.example.com/imgs"
    )
    url, _ = generate_url(gateway)
    key = url.removeprefix("https://cdn.example.com/imgs/")
    assert key != url and s3_bucket.object_keys() == [f"images/{key}"]
