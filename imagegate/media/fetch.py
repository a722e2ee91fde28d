"""Fetching client-supplied image URLs without letting them reach inside our network (SPEC §8).

The address check lives in the resolver the connection itself uses, so the addresses that are
checked are exactly the ones connected to: a host cannot answer "public" to a first lookup and
"127.0.0.1" to a second one (DNS rebinding). IP-literal hosts never reach a resolver in
aiohttp, so they are checked before each request, as is every redirect hop.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Callable

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from imagegate.errors import InvalidRequest, PayloadTooLarge

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
AddressPredicate = Callable[[IPAddress], bool]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
# Legacy IPv4 spellings (127.1, 2130706433) that some stacks still map onto an address.
_NUMERIC_HOST = re.compile(r"[0-9.]+\.?")


def is_public_address(ip: IPAddress) -> bool:
    """Whether ``ip`` is a globally routable unicast address, IPv4 forms inside IPv6 included."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return is_public_address(ip.ipv4_mapped)
        if ip in _IPV4_COMPATIBLE:
            # Deprecated since 2006; no legitimate image host uses it (and it covers :: and ::1).
            return False
        if ip in _NAT64:
            return is_public_address(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip.sixtofour is not None and not is_public_address(ip.sixtofour):
            return False
        if ip.is_site_local:
            return False
    elif ip in _CGNAT:
        return False
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_unspecified
        or ip.is_reserved
    )


class SafeFetcher:
    """Fetches remote images under SPEC §8: http(s) only, public addresses only, bounded.

    ``is_allowed`` replaces :func:`is_public_address` as the address rule (tests use it to admit
    one loopback address); ``allow_private=True`` admits every address. ``resolver`` is where names
    are looked up (default: the system's); whatever it answers passes the address rule before a
    connection is made, so tests can stand in a resolver that lies.

    >>> fetcher = SafeFetcher(allow_private=False, timeout_s=10, max_bytes=50 << 20, max_redirects=3)
    >>> data = await fetcher.fetch("https://example.com/cat.png", param="image_url")  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        allow_private: bool,
        timeout_s: float,
        max_bytes: int,
        max_redirects: int,
        is_allowed: AddressPredicate | None = None,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self._is_allowed: AddressPredicate = (
            _allow_all if allow_private else (is_allowed or is_public_address)
        )
        self._timeout_s = timeout_s
        self._max_bytes = max_bytes
        self._max_redirects = max_redirects
        self._resolver = resolver
        # Created on first use: a ClientSession wants a running event loop, the app factory has none.
        self._session: aiohttp.ClientSession | None = None

    async def fetch(self, url: str, *, param: str) -> bytes:
        """The body of ``url``; every refusal is an ``InvalidRequest`` naming ``param``."""
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._fetch(url, param)
        except TimeoutError as exc:
            raise _refused(param, f"could not be fetched within {self._timeout_s:g} s") from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _fetch(self, url: str, param: str) -> bytes:
        current = self._checked_url(url, param)
        session = self._get_session()
        for _hop in range(self._max_redirects + 1):
            try:
                async with session.get(current, allow_redirects=False) as resp:
                    if resp.status in _REDIRECTS:
                        location = resp.headers.get("Location")
                        if not location:
                            raise _refused(param, f"redirected (HTTP {resp.status}) without a Location")
                        current = self._checked_url(resp.url.join(URL(location)), param)
                        continue
                    if not 200 <= resp.status < 300:
                        raise _refused(param, f"could not be fetched: HTTP {resp.status}")
                    return await self._read_body(resp, param)
            except aiohttp.ClientConnectorError as exc:
                if isinstance(exc.os_error, _BlockedAddress):
                    raise _non_public(param) from exc
                raise _refused(param, "could not be fetched: connection failed") from exc
            except (aiohttp.ClientError, ValueError) as exc:
                raise _refused(param, "could not be fetched") from exc
        raise _refused(param, f"redirected more than {self._max_redirects} times")

    def _checked_url(self, url: str | URL, param: str) -> URL:
        try:
            parsed = URL(url)
            host = parsed.host
        except (TypeError, ValueError) as exc:
            raise _refused(param, "is not a valid URL") from exc
        if parsed.scheme not in ("http", "https"):
            raise _refused(param, "must be an http or https URL")
        if not host:
            raise _refused(param, "has no host")
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            if _NUMERIC_HOST.fullmatch(host):
                raise _refused(param, "has a malformed IP address") from None
            return parsed  # a name: the guarded resolver checks what it resolves to
        if not self._is_allowed(literal):
            raise _non_public(param)
        return parsed

    async def _read_body(self, resp: aiohttp.ClientResponse, param: str) -> bytes:
        # A declared length is only the wire size when the body is not compressed.
        declared = resp.content_length
        if declared is not None and declared > self._max_bytes and "Content-Encoding" not in resp.headers:
            raise _too_large(param, self._max_bytes)
        body = bytearray()
        async for chunk in resp.content.iter_chunked(_CHUNK):
            body += chunk
            if len(body) > self._max_bytes:
                raise _too_large(param, self._max_bytes)
        return bytes(body)

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            inner = self._resolver or DefaultResolver()
            connector = aiohttp.TCPConnector(resolver=_GuardedResolver(inner, self._is_allowed))
            self._session = aiohttp.ClientSession(
                connector=connector,
                trust_env=False,  # a proxy would connect on our behalf, past the resolver check
                cookie_jar=aiohttp.DummyCookieJar(),  # one client's cookies must not reach another's fetch
                headers={"User-Agent": "imagegate", "Accept": "image/*"},
            )
        return self._session


class _BlockedAddress(OSError):
    """Raised by the resolver; aiohttp wraps it in a ClientConnectorError, unconnected."""


class _GuardedResolver(AbstractResolver):
    def __init__(self, inner: AbstractResolver, is_allowed: AddressPredicate) -> None:
        self._inner = inner
        self._is_allowed = is_allowed

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        # Every address, not just the first: the connector falls back to the others.
        for result in results:
            try:
                ip = ipaddress.ip_address(result["host"])
            except ValueError:
                raise _BlockedAddress(f"{host} resolved to an unparsable address") from None
            if not self._is_allowed(ip):
                raise _BlockedAddress(f"{host} resolves to a non-public address")
        return results

    async def close(self) -> None:
        await self._inner.close()


def _allow_all(ip: IPAddress) -> bool:
    return True


def _refused(param: str, why: str) -> InvalidRequest:
    return InvalidRequest(f"{param} {why}", param=param, code="invalid_image_url")


def _non_public(param: str) -> InvalidRequest:
    return _refused(param, "resolves to a non-public address")


def _too_large(param: str, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"{param} is larger than the {limit / (1024 * 1024):g} MB limit", param=param)
