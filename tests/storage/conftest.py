"""A real S3-compatible server on loopback (moto's standalone server), and buckets on it.

``s3_server`` starts ``python -m moto.server`` once per test session in its own process;
``s3_bucket`` makes a fresh bucket per test and sets the AWS_* variables the store reads.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.conftest import free_port, service_missing

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "test-access-key",
    "AWS_SECRET_ACCESS_KEY": "test-secret-key",
    "AWS_REGION": "us-east-1",
}


@dataclass
class S3Server:
    endpoint: str

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=CREDENTIALS["AWS_REGION"],
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )


@dataclass
class S3Bucket:
    server: S3Server
    name: str

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    def url(self, prefix: str = "images") -> str:
        return f"s3://{self.name}/{prefix}"

    def object_keys(self) -> list[str]:
        pages = self.server.client().get_paginator("list_objects_v2").paginate(Bucket=self.name)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
            break
        except (urllib.error.URLError, OSError):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("the moto S3 server did not start") from None
            time.sleep(0.1)
    try:
        yield S3Server(endpoint)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def s3_bucket(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Bucket:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    bucket = S3Bucket(s3_server, f"imagegate-{secrets.token_hex(6)}")
    s3_server.client().create_bucket(Bucket=bucket.name)
    return bucket


def s3_environment(bucket: S3Bucket) -> dict[str, str]:
    """The variables a `serve` subprocess needs to use the bucket."""
    return {
        **os.environ,
        **CREDENTIALS,
        "IMAGEGATE_STORAGE_URL": bucket.url(),
        "IMAGEGATE_S3_ENDPOINT": bucket.endpoint,
    }


S3RVER = Path(__file__).parent / "s3rver" / "node_modules" / ".bin" / "s3rver"
S3RVER_KEY = "S3RVER"  # s3rver's built-in credentials (access key and secret alike)


@pytest.fixture(scope="session")
def signing_s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """s3rver: unlike moto it checks signatures and refuses an expired presigned link."""
    if not S3RVER.exists() or shutil.which("node") is None:
        service_missing("s3rver is not installed (scripts/test.sh runs npm install in tests/storage/s3rver)")
    port = free_port()
    process = subprocess.Popen(
        [
            str(S3RVER),
            "-d",
            str(tmp_path_factory.mktemp("s3rver")),
            "-a",
            "127.0.0.1",
            "-p",
            str(port),
            "--silent",
            "--configure-bucket",
            "signed",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/signed", timeout=1).close()
        except urllib.error.HTTPError:
            break  # it answers (403 without a signature): it is up
        except (urllib.error.URLError, OSError):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("s3rver did not start") from None
            time.sleep(0.1)
        else:
            break
    try:
        yield S3Server(endpoint)
    finally:
        process.terminate()
        process.wait(timeout=10)
