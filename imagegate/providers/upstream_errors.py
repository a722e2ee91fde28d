"""The upstream failures every HTTP provider maps the same way (SPEC §6).

Each provider maps its own protocol's error bodies; what is the same for all of them — a
transport failure, a malformed answer, bad credentials, a rate limit — is built here, so the
client sees one wording and one code whichever upstream failed. No message carries a secret.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from imagegate import jsonsplice
from imagegate.errors import GatewayError, RateLimited, UpstreamFailed, UpstreamTimeout
from imagegate.settings import ChannelConfig


def bad_response(message: str) -> UpstreamFailed:
    return UpstreamFailed(message, code="upstream_bad_response")


def json_object(raw: bytes) -> dict[str, Any]:
    """An upstream's JSON answer, which must be an object; megabytes of ``b64_json`` stay unparsed."""
    try:
        body = jsonsplice.loads(raw, views=True)
    except orjson.JSONDecodeError as exc:
        raise bad_response("the upstream answered with invalid JSON") from exc
    if not isinstance(body, dict):
        raise bad_response("the upstream answered JSON that is not an object")
    return body


def transport_error(channel: ChannelConfig, exc: Exception) -> GatewayError:
    """A failed call: timeout (504), unreachable or broken connection (502), malformed answer (502)."""
    # ServerTimeoutError is also a connection error, so timeouts are matched first.
    if isinstance(exc, TimeoutError):
        return UpstreamTimeout(f"channel {channel.name} did not answer within {channel.timeout_s:g}s")
    if isinstance(exc, aiohttp.ClientConnectionError):
        return UpstreamFailed(
            f"could not reach the upstream of channel {channel.name}", code="upstream_unreachable"
        )
    if isinstance(exc, aiohttp.ClientError):
        return UpstreamFailed(f"channel {channel.name}: the upstream call failed ({type(exc).__name__})")
    # ValueError / TypeError: a field of the answer had the wrong shape (e.g. a token count).
    return bad_response(f"channel {channel.name}: the upstream's answer was malformed")


def credentials_rejected(channel: ChannelConfig) -> UpstreamFailed:
    # The client's key was fine; the gateway's own was not, which is a 502, never a 401.
    return UpstreamFailed(
        f"the upstream rejected this gateway's credentials for channel {channel.name}",
        code="upstream_auth_failed",
    )


def model_not_served(channel: ChannelConfig, upstream_model: str, message: str) -> UpstreamFailed:
    return UpstreamFailed(
        f"channel {channel.name}: the upstream does not serve model {upstream_model}: {message}",
        code="upstream_model_not_found",
    )


def rate_limited(retry_after: str | None = None) -> RateLimited:
    return RateLimited(
        "the upstream is rate limiting this channel",
        code="rate_limit_exceeded",
        headers={"Retry-After": retry_after} if retry_after else None,
    )
