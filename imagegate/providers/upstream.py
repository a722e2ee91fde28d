"""The HTTP plumbing every upstream provider shares, by composition: :class:`UpstreamClient`.

One client per channel holds the base URL, the auth headers and the timeout, maps transport
failures (timeout 504, unreachable 502, malformed 502) and hands an upstream's error answer to
the provider's own mapper, after scrubbing it. Scrubbing happens here and only here: every
string of the error body (message, param, code, nested objects and lists) has the channel's
secrets replaced with ``***`` before any provider code sees it, and the error built from it is
scrubbed once more, so a secret an upstream echoes never reaches a client, a stream, the
request log or the access log.

    client = UpstreamClient(channel, http, default_base_url=URL, headers=auth, map_error=openai_error)
    body = await client.post_json("/images/generations", upstream_model, json=fields)
    async with client.post("/images/generations", upstream_model, json=fields) as response:
        ...                                   # a 2xx response; read or stream it
    raise client.stream_failure(event_payload, upstream_model)   # an error event mid-stream

Usage numbers from any upstream go through :func:`parse_usage` / :func:`token_count`: an
impossible count is a 502 ``upstream_malformed`` before any money moves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import aiohttp
import orjson

from imagegate import domain
from imagegate.domain import Usage
from imagegate.errors import GatewayError, UpstreamMalformed
from imagegate.providers.upstream_errors import json_object, transport_error

if TYPE_CHECKING:
    from imagegate.http import HttpClients
    from imagegate.settings import ChannelConfig

# What a call may raise besides our own errors; anything else is a bug and should surface as one.
TRANSPORT_ERRORS = (TimeoutError, aiohttp.ClientError, ValueError, TypeError)
MASK = "***"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class UpstreamError:
    """An upstream's error answer, already scrubbed, for a provider's mapper to classify."""

    channel: ChannelConfig
    #: The HTTP status; None for an error event inside a 200 stream.
    status: int | None
    #: The parsed JSON body (or stream event), or None when it was not JSON.
    body: Any
    #: The raw body as text (bounded), for upstreams that answer errors in plain text.
    text: str
    headers: Mapping[str, str]
    upstream_model: str


ErrorMapper = Callable[[UpstreamError], GatewayError]


class Scrubber:
    """Replaces a channel's secrets in any string, dict or list, recursively."""

    def __init__(self, secrets: list[str]) -> None:
        forms = {form for secret in secrets if secret for form in (secret, quote(secret, safe=""))}
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = sorted(forms, key=len, reverse=True)

    def __call__(self, value: T) -> T:
        if not self._secrets:
            return value
        return self._scrub(value)  # type: ignore[no-any-return]

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self._secrets:
                if secret in value:
                    value = value.replace(secret, MASK)
            return value
        if isinstance(value, dict):
            return {self._scrub(key): self._scrub(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self._scrub(item) for item in value]
        return value

    def error(self, error: GatewayError) -> GatewayError:
        """The error with its client-visible strings scrubbed (in place; also returned)."""
        error.message = self(error.message)
        error.args = (error.message,)
        error.param = self(error.param)
        error.code = self(error.code)
        error.headers = self(error.headers)
        return error


class UpstreamClient:
    """One channel's way to its upstream: URL, headers, timeout, error mapping, secret scrubbing."""

    def __init__(
        self,
        channel: ChannelConfig,
        http: HttpClients,
        *,
        default_base_url: str,
        headers: Mapping[str, str],
        map_error: ErrorMapper,
    ) -> None:
        self.channel = channel
        self.http = http
        self.base_url = (channel.base_url or default_base_url).rstrip("/")
        self.headers = dict(headers)
        self.timeout = aiohttp.ClientTimeout(total=channel.timeout_s)
        self.scrub = Scrubber([channel.api_key])
        self._map_error = map_error

    @asynccontextmanager
    async def post(
        self, path: str, upstream_model: str, **payload: Any
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """A successful (2xx) response to ``POST base_url + path``; anything else is raised mapped.

        ``payload`` is aiohttp's (``json=``, ``data=``); ``headers=`` adds to the channel's.
        """
        headers = {**self.headers, **payload.pop("headers", {})}
        try:
            async with self.http.upstream.post(
                self.base_url + path, headers=headers, timeout=self.timeout, **payload
            ) as response:
                if response.status >= 400:
                    raw = await response.read()
                    raise self.failure(response.status, raw, response.headers, upstream_model)
                yield response
        except TRANSPORT_ERRORS as exc:
            raise transport_error(self.channel, exc) from exc

    async def post_json(self, path: str, upstream_model: str, **payload: Any) -> dict[str, Any]:
        """The JSON object a successful call answers (502 when it is not one)."""
        async with self.post(path, upstream_model, **payload) as response:
            raw = await response.read()
        return json_object(raw)

    def failure(
        self, status: int, raw: bytes, headers: Mapping[str, str], upstream_model: str
    ) -> GatewayError:
        """The error for an HTTP error answer: parsed, scrubbed, mapped by the provider, scrubbed."""
        try:
            body: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        text = raw[:2000].decode("utf-8", "replace")
        return self._mapped(status, body, text, headers, upstream_model)

    def stream_failure(self, payload: Any, upstream_model: str = "") -> GatewayError:
        """The error for an error event inside a successful stream."""
        return self._mapped(None, payload, "", {}, upstream_model)

    def _mapped(
        self, status: int | None, body: Any, text: str, headers: Mapping[str, str], upstream_model: str
    ) -> GatewayError:
        scrubbed = UpstreamError(
            self.channel, status, self.scrub(body), self.scrub(text), headers, upstream_model
        )
        return self.scrub.error(self._map_error(scrubbed))


def parse_usage(data: Any) -> Usage | None:
    """OpenAI-shaped ``usage`` from any upstream, checked; impossible numbers are a 502."""
    try:
        return Usage.from_wire(data)
    except ValueError as exc:
        raise UpstreamMalformed(f"the upstream reported impossible usage: {exc}") from exc


def token_count(value: Any, field: str) -> int:
    """One token count from an upstream's own usage format, checked like `parse_usage`."""
    try:
        return domain.token_count(value, field)
    except ValueError as exc:
        raise UpstreamMalformed(f"the upstream reported impossible usage: {exc}") from exc


def error_object(body: Any) -> dict[str, Any]:
    """The ``error`` object of an OpenAI- or Google-style envelope, or {} for anything else."""
    if isinstance(body, list) and body:  # some Google front ends wrap the envelope in a list
        body = body[0]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str):  # some compatible hosts send {"error": "text"}
        return {"message": error}
    return error if isinstance(error, dict) else {}
