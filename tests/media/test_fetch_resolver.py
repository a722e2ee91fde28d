"""SSRF through DNS: every address a name resolves to is checked, on the lookup the connection uses.

A stand-in resolver answers what a hostile DNS server would. The "internet" is 127.0.0.2 here
(the address rule admits it), the private network is 127.0.0.1: a server listens on each, so a
wrong check shows up as a hit on the private one.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from imagegate.errors import InvalidRequest
from imagegate.media.fetch import IPAddress, SafeFetcher, is_public_address

PUBLIC = "127.0.0.2"  # stands in for a public address
PRIVATE = "127.0.0.1"
NAME = "images.example.com"


def public_stand_in(ip: IPAddress) -> bool:
    return ip == ipaddress.ip_address(PUBLIC) or is_public_address(ip)


@dataclass
class Host:
    hits: list[str] = field(default_factory=list)


@asynccontextmanager
async def image_host(address: str, port: int) -> AsyncIterator[Host]:
    host = Host()

    async def image(request: web.Request) -> web.Response:
        host.hits.append(request.path)
        return web.Response(body=f"image from {address}".encode(), content_type="image/png")

    app = web.Application()
    app.add_routes([web.get("/{name}", image)])
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, address, port).start()
    try:
        yield host
    finally:
        await runner.cleanup()


@pytest.fixture
def port() -> Iterator[int]:
    """A port free on both loopback addresses."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free: int = sock.getsockname()[1]
    yield free


class StandInResolver(AbstractResolver):
    """Answers each lookup of a name with the next list of addresses (the last one repeats)."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups.append(host)
        addresses = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        pass


MakeFetcher = Callable[[StandInResolver], SafeFetcher]


@pytest.fixture
async def make_fetcher() -> AsyncIterator[MakeFetcher]:
    made: list[SafeFetcher] = []

    def make(resolver: StandInResolver) -> SafeFetcher:
        fetcher = SafeFetcher(
            allow_private=False,
            timeout_s=5,
            max_bytes=1000,
            max_redirects=0,
            is_allowed=public_stand_in,
            resolver=resolver,
        )
        made.append(fetcher)
        return fetcher

    yield make
    for fetcher in made:
        await fetcher.aclose()


async def test_the_stand_ins_work(port: int, make_fetcher: MakeFetcher) -> None:
    """The public stand-in is fetched from; otherwise the refusals below would prove nothing."""
    async with image_host(PUBLIC, port) as public:
        fetcher = make_fetcher(StandInResolver([PUBLIC]))
        data = await fetcher.fetch(f"http://{NAME}:{port}/a.png", param="image_url")
    assert data == f"image from {PUBLIC}".encode()
    assert public.hits == ["/a.png"]


@pytest.mark.parametrize(
    "addresses",
    [
        [PUBLIC, PRIVATE],  # a check of the first answer alone lets the connector fall back to 127.0.0.1
        [PRIVATE, PUBLIC],
        [PUBLIC, PUBLIC, PRIVATE],
        [PUBLIC, "::1"],
        [PUBLIC, "::ffff:127.0.0.1"],
        [PUBLIC, "169.254.169.254"],
    ],
    ids=str,
)
async def test_a_name_resolving_to_public_and_private_addresses_is_refused(
    port: int, make_fetcher: MakeFetcher, addresses: list[str]
) -> None:
    # Nothing listens on the public stand-in: a connector that got past the check would fall back
    # to the next address, the private server.
    async with image_host(PRIVATE, port) as private:
        fetcher = make_fetcher(StandInResolver(addresses))
        with pytest.raises(InvalidRequest) as caught:
            await fetcher.fetch(f"http://{NAME}:{port}/secret", param="images[0].image_url")

    assert caught.value.param == "images[0].image_url"
    assert "non-public address" in caught.value.message
    assert private.hits == []


async def test_a_rebinding_name_never_reaches_the_private_address(
    port: int, make_fetcher: MakeFetcher
) -> None:
    """First lookup public, every later one private: the check must be on the lookup that connects."""
    resolver = StandInResolver([PUBLIC], [PRIVATE])
    async with image_host(PUBLIC, port) as public, image_host(PRIVATE, port) as private:
        fetcher = make_fetcher(resolver)
        first = await fetcher.fetch(f"http://{NAME}:{port}/first", param="image_url")
        await fetcher.aclose()  # a fresh connection pool, DNS cache included: the name is looked up again
        with pytest.raises(InvalidRequest) as caught:
            await fetcher.fetch(f"http://{NAME}:{port}/second", param="image_url")

    assert first == f"image from {PUBLIC}".encode()
    assert "non-public address" in caught.value.message
    assert (public.hits, private.hits) == (["/first"], [])
    assert resolver.lookups == [NAME, NAME]
