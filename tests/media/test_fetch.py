import asyncio
import io
import ipaddress
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from PIL import Image

from imagegate.errors import InvalidRequest, PayloadTooLarge
from imagegate.media.fetch import IPAddress, SafeFetcher, is_public_address

LOOPBACK = ipaddress.IPv4Address("127.0.0.1")


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "green").save(out, "PNG")
    return out.getvalue()


PNG = png_bytes()


@dataclass
class Server:
    base: str
    hits: list[str] = field(default_factory=list)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    """A real HTTP server on 127.0.0.1 with the behaviours a remote image host can have."""
    release = asyncio.Event()
    srv = Server(base="")

    @web.middleware
    async def count(request: web.Request, handler: Callable[..., object]) -> web.StreamResponse:
        srv.hits.append(request.path_qs)
        return await handler(request)  # type: ignore[no-any-return,misc]

    async def image(request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def chain(request: web.Request) -> web.Response:
        left = int(request.match_info["n"])
        if left == 0:
            return web.Response(body=PNG, content_type="image/png")
        raise web.HTTPFound(f"../chain/{left - 1}")  # relative, as many servers send

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 5000, content_type="image/png")

    async def big_chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(50):
            await resp.write(b"x" * 100)
        await resp.write_eof()
        return resp

    async def slow(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(PNG[:10])
        await release.wait()  # trickles forever, until teardown
        return resp

    async def missing(request: web.Request) -> web.Response:
        raise web.HTTPNotFound()

    app = web.Application(middlewares=[count])
    app.add_routes(
        [
            web.get("/img.png", image),
            web.get("/redirect", redirect),
            web.get("/chain/{n}", chain),
            web.get("/big", big),
            web.get("/big-chunked", big_chunked),
            web.get("/slow", slow),
            web.get("/missing", missing),
        ]
    )
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    srv.base = f"http://127.0.0.1:{port}"
    yield srv
    release.set()
    await runner.cleanup()


MakeFetcher = Callable[..., SafeFetcher]


@pytest.fixture
async def make_fetcher() -> AsyncIterator[MakeFetcher]:
    made: list[SafeFetcher] = []

    def make(**overrides: object) -> SafeFetcher:
        options: dict[str, object] = {
            "allow_private": False,
            "timeout_s": 5.0,
            "max_bytes": 1000,
            "max_redirects": 3,
        } | overrides
        fetcher = SafeFetcher(**options)  # type: ignore[arg-type]
        made.append(fetcher)
        return fetcher

    yield make
    for fetcher in made:
        await fetcher.aclose()


def loopback_only(ip: IPAddress) -> bool:
    """Public addresses plus our test server's: stands in for "the internet" in redirect tests."""
    return ip == LOOPBACK or is_public_address(ip)


async def refusal(fetcher: SafeFetcher, url: str) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        await fetcher.fetch(url, param="image_url")
    assert (info.value.param, info.value.code) == ("image_url", "invalid_image_url")
    return info.value


async def test_fetches_from_a_private_server_when_allowed(server: Server, make_fetcher: MakeFetcher) -> None:
    data = await make_fetcher(allow_private=True).fetch(f"{server.base}/img.png", param="image_url")

    assert data == PNG


async def test_refuses_loopback_literal_without_connecting(server: Server, make_fetcher: MakeFetcher) -> None:
    error = await refusal(make_fetcher(), f"{server.base}/img.png")

    assert "non-public address" in error.message
    assert server.hits == []


async def test_refuses_a_name_resolving_to_loopback_without_connecting(
    server: Server, make_fetcher: MakeFetcher
) -> None:
    port = server.base.rsplit(":", 1)[1]

    error = await refusal(make_fetcher(), f"http://localhost:{port}/img.png")

    assert "non-public address" in error.message
    assert server.hits == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[fe80::1]/",
        "http://10.0.0.1/",
        "http://192.168.1.1/",
        "http://172.16.0.1/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "https://[fd00::1]/img.png",
        "http://224.0.0.1/",
    ],
)
async def test_refuses_non_public_literals(url: str, make_fetcher: MakeFetcher) -> None:
    error = await refusal(make_fetcher(), url)

    assert "non-public address" in error.message


@pytest.mark.parametrize("url", ["http://127.1/", "http://2130706433/", "http://0x7f000001/"])
async def test_refuses_legacy_ip_spellings(url: str, make_fetcher: MakeFetcher) -> None:
    await refusal(make_fetcher(), url)


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/cat.png", "file:///etc/passwd", "gopher://example.com/", "not a url", "http:///x"],
)
async def test_refuses_other_schemes_and_malformed_urls(url: str, make_fetcher: MakeFetcher) -> None:
    await refusal(make_fetcher(allow_private=True), url)


async def test_follows_redirects_up_to_the_limit(server: Server, make_fetcher: MakeFetcher) -> None:
    fetcher = make_fetcher(allow_private=True, max_redirects=2)

    assert await fetcher.fetch(f"{server.base}/chain/2", param="image_url") == PNG
    error = await refusal(fetcher, f"{server.base}/chain/3")

    assert "redirected more than 2 times" in error.message


@pytest.mark.parametrize(
    "target", ["http://169.254.169.254/latest/meta-data", "http://127.0.0.2:1/", "http://[::1]/"]
)
async def test_refuses_a_redirect_to_a_non_public_address(
    target: str, server: Server, make_fetcher: MakeFetcher
) -> None:
    fetcher = make_fetcher(is_allowed=loopback_only)
    # The rule admits the server itself...
    assert await fetcher.fetch(f"{server.base}/img.png", param="image_url") == PNG

    # ...but each hop is checked again.
    error = await refusal(fetcher, f"{server.base}/redirect?to={target}")

    assert "non-public address" in error.message


async def test_refuses_a_redirect_to_another_scheme(server: Server, make_fetcher: MakeFetcher) -> None:
    error = await refusal(make_fetcher(allow_private=True), f"{server.base}/redirect?to=file:///etc/passwd")

    assert "http or https" in error.message


@pytest.mark.parametrize("path", ["/big", "/big-chunked"])
async def test_refuses_bodies_over_the_limit(path: str, server: Server, make_fetcher: MakeFetcher) -> None:
    with pytest.raises(PayloadTooLarge) as info:
        await make_fetcher(allow_private=True, max_bytes=1000).fetch(server.base + path, param="image_url")

    assert (info.value.status, info.value.param) == (413, "image_url")


async def test_non_2xx_is_refused(server: Server, make_fetcher: MakeFetcher) -> None:
    error = await refusal(make_fetcher(allow_private=True), f"{server.base}/missing")

    assert "HTTP 404" in error.message


async def test_total_time_is_bounded(server: Server, make_fetcher: MakeFetcher) -> None:
    fetcher = make_fetcher(allow_private=True, timeout_s=0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()

    error = await refusal(fetcher, f"{server.base}/slow")

    assert "within 0.3 s" in error.message
    assert loop.time() - started < 2


async def test_connection_failure_is_a_clean_refusal(make_fetcher: MakeFetcher) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused

        error = await refusal(make_fetcher(allow_private=True), f"http://127.0.0.1:{port}/")

    assert "connection failed" in error.message


@pytest.fixture
def no_running_loop() -> Iterator[None]:
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
    yield


def test_constructible_outside_an_event_loop(no_running_loop: None) -> None:
    SafeFetcher(allow_private=False, timeout_s=1, max_bytes=1, max_redirects=0)


async def test_aclose_is_idempotent(server: Server) -> None:
    fetcher = SafeFetcher(allow_private=True, timeout_s=5, max_bytes=10_000, max_redirects=0)
    await fetcher.aclose()
    assert await fetcher.fetch(f"{server.base}/img.png", param="image_url") == PNG

    await fetcher.aclose()
    await fetcher.aclose()


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("1.1.1.1", True),
        ("2606:4700:4700::1111", True),
        ("::ffff:8.8.8.8", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.31.255.255", False),
        ("192.168.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("100.127.255.255", False),
        ("0.0.0.0", False),
        ("255.255.255.255", False),
        ("224.0.0.251", False),
        ("240.0.0.1", False),
        ("192.0.2.1", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("fd12:3456::1", False),
        ("fec0::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:169.254.169.254", False),
        ("::ffff:10.0.0.1", False),
        ("::127.0.0.1", False),
        ("64:ff9b::a9fe:a9fe", False),
        ("2002:7f00:1::", False),
        ("2001:db8::1", False),
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public
