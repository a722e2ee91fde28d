"""Who the client is: the TCP peer, or what a trusted proxy in front of us says it is.

A forwarded header is only as good as whoever wrote it. A client can send any
``X-Forwarded-For`` it likes, and a proxy that appends to it keeps the client's entries on the
left. So the chain is read from the right: the peer first, then each address a trusted hop
reported, stopping at the first hop that is not trusted: that address is the client. With no
trusted proxies configured the headers are never read::

    resolver = ClientIpResolver(["10.0.0.0/8"])
    resolver.client_ip("10.1.2.3", [(b"x-forwarded-for", b"6.6.6.6, 203.0.113.9")])
    # -> "203.0.113.9" (6.6.6.6 was written by the client itself)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Literal

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
ForwardedHeader = Literal["x-forwarded-for", "forwarded"]


class ClientIpResolver:
    def __init__(self, trusted_proxies: Iterable[str], header: ForwardedHeader = "x-forwarded-for") -> None:
        self.trusted: tuple[IpNetwork, ...] = tuple(
            ipaddress.ip_network(entry, strict=False) for entry in trusted_proxies
        )
        self.header = header.encode()

    def client_ip(self, peer: str | None, headers: Sequence[tuple[bytes, bytes]]) -> str | None:
        """The client's address, or None when a trusted hop reported something unreadable."""
        if peer is None or not self.trusted:
            return peer
        current = parse_ip(peer)
        if current is None or not self._is_trusted(current):
            return peer
        hops = [value for name, value in headers if name == self.header]
        reported = _forwarded_for(hops) if self.header == b"forwarded" else _x_forwarded_for(hops)
        for entry in reversed(reported):
            address = parse_ip(entry)
            if address is None:
                return None  # a trusted hop says the client is "unknown" or garbled: so do we
            current = address
            if not self._is_trusted(current):
                break
        return str(current)

    def _is_trusted(self, address: IpAddress) -> bool:
        return any(address in network for network in self.trusted)


def parse_ip(value: str) -> IpAddress | None:
    """An address from a header entry: ``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``, ``::1``."""
    value = value.strip().strip('"')
    if value.startswith("["):
        value = value[1 : value.find("]")] if "]" in value else ""
    elif value.count(":") == 1:
        value = value.partition(":")[0]  # IPv4 with a port
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _x_forwarded_for(values: list[bytes]) -> list[str]:
    # Several header lines are one list, in order (RFC 9110 §5.3).
    return [part.strip() for value in values for part in value.decode("latin-1").split(",")]


def _forwarded_for(values: list[bytes]) -> list[str]:
    """The ``for=`` of each element of RFC 7239 ``Forwarded`` headers, in order."""
    found: list[str] = []
    for value in values:
        for element in value.decode("latin-1").split(","):
            node = "unknown"  # an element without for= still is a hop we cannot name
            for pair in element.split(";"):
                key, _, item = pair.strip().partition("=")
                if key.lower() == "for":
                    node = item
            found.append(node)
    return found
