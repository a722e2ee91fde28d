"""The HTTP clients the gateway owns: one pooled session for upstreams, one guarded fetcher.

Both live for the app's lifetime (created in the lifespan), so connections are reused across
requests instead of paying a TCP and TLS handshake per image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from imagegate.media.fetch import SafeFetcher
from imagegate.settings import Settings

UPSTREAM_READ_BUFFER = 2 * 1024 * 1024


@dataclass
class HttpClients:
    #: Talks to configured upstreams (trusted: the operator chose them).
    upstream: aiohttp.ClientSession
    #: Fetches client-supplied image URLs under the SSRF rules of SPEC §8.
    fetcher: SafeFetcher

    @classmethod
    def create(cls, settings: Settings) -> HttpClients:
        # No connection cap: one long generation must not queue behind another. Timeouts are
        # per channel, set on each call.
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, enable_cleanup_closed=True)
        upstream = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None),
            # Image bodies are megabytes: a 64 KiB buffer pauses and resumes the socket ~100
            # times per body, which costs more CPU than the copy itself.
            read_bufsize=UPSTREAM_READ_BUFFER,
            auto_decompress=True,
            trust_env=False,
            # Upstreams are APIs called for many clients: a cookie one sets must not ride along
            # on the next client's call (and the jar costs every request a lookup).
            cookie_jar=aiohttp.DummyCookieJar(),
            # Request bodies (``json=``) through orjson: several times faster than the standard
            # library on every call, and on megabytes of inline base64 (Gemini edits) by far.
            json_serialize=_orjson_text,
        )
        fetcher = SafeFetcher(
            allow_private=settings.allow_private_fetch,
            timeout_s=settings.fetch_timeout_s,
            max_bytes=int(settings.max_image_mb * 1024 * 1024),
            max_redirects=settings.fetch_max_redirects,
        )
        return cls(upstream=upstream, fetcher=fetcher)

    async def aclose(self) -> None:
        await self.upstream.close()
        await self.fetcher.aclose()


def _orjson_text(value: Any) -> str:
    return orjson.dumps(value).decode()
