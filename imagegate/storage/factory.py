"""``open_store(settings)``: the one place that turns IMAGEGATE_STORAGE_* into a store."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from imagegate.settings import Settings
from imagegate.storage.base import ImageStore, UrlPolicy
from imagegate.storage.disk import DiskStore


def open_store(settings: Settings) -> ImageStore:
    """The store the settings name. Raises ValueError for a URL or URL mode that cannot work."""
    urls = UrlPolicy(
        mode=settings.storage_urls,
        public_url=settings.storage_public_url,
        presign_s=settings.presign_s,
    )
    if urls.mode == "public" and not urls.public_url:
        raise ValueError("IMAGEGATE_STORAGE_URLS=public needs IMAGEGATE_STORAGE_PUBLIC_URL")
    url = settings.storage_url
    scheme = urlsplit(url).scheme if url else "file"
    if scheme == "s3":
        from imagegate.storage.s3 import S3Store  # only object-store users load the S3 client

        return S3Store(
            url, endpoint=settings.s3_endpoint, urls=urls, retention_days=settings.image_retention_days
        )
    if scheme != "file":
        raise ValueError(f"IMAGEGATE_STORAGE_URL must be file:///path or s3://bucket/prefix, not {url!r}")
    if urls.mode == "presigned":
        raise ValueError("IMAGEGATE_STORAGE_URLS=presigned needs an s3:// IMAGEGATE_STORAGE_URL")
    root = Path(unquote(urlsplit(url).path)) if url else settings.images_dir
    return DiskStore(root, urls=urls, retention_days=settings.image_retention_days)
