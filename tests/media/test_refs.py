import base64
import io
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from PIL import Image

from imagegate.errors import InvalidRequest
from imagegate.media.fetch import SafeFetcher
from imagegate.media.refs import parse_data_url, read_image_ref


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (4, 4), (1, 2, 3, 4)).save(out, "PNG")
    return out.getvalue()


PNG = png_bytes()
B64 = base64.b64encode(PNG).decode()


@pytest.fixture
async def fetcher() -> AsyncIterator[SafeFetcher]:
    fetcher = SafeFetcher(allow_private=True, timeout_s=5, max_bytes=1 << 20, max_redirects=2)
    yield fetcher
    await fetcher.aclose()


@pytest.fixture
async def image_host() -> AsyncIterator[str]:
    async def image(request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    app = web.Application()
    app.add_routes([web.get("/cat.png", image)])
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


@pytest.mark.parametrize(
    "url",
    [
        f"data:image/png;base64,{B64}",
        f"DATA:IMAGE/PNG;BASE64,{B64}",
        f"data:image/jpeg;base64,{B64}",  # the declared type is not trusted, only checked to be an image
        f"data:image/png;name=cat.png;base64,{B64}",
        f"data:image/png;base64,{B64[:20]}\n{B64[20:]}",
    ],
)
def test_parse_data_url(url: str) -> None:
    assert parse_data_url(url, param="images[0].image_url") == PNG


@pytest.mark.parametrize(
    ("url", "code"),
    [
        (f"data:text/plain;base64,{B64}", "invalid_image_url"),
        (f"data:image/png,{B64}", "invalid_image_url"),  # not base64-encoded
        ("data:image/png;base64", "invalid_image_url"),
        ("data:image/png;base64,!!!not base64!!!", "invalid_base64"),
        ("data:image/png;base64,abc", "invalid_base64"),  # bad padding
        ("data:image/png;base64,ünïcode", "invalid_base64"),
        ("data:image/png;base64,", "invalid_image"),
    ],
)
def test_parse_data_url_refusals(url: str, code: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_data_url(url, param="mask")

    assert (info.value.param, info.value.code) == ("mask", code)


async def test_read_image_ref_decodes_data_urls(fetcher: SafeFetcher) -> None:
    assert await read_image_ref(f" data:image/png;base64,{B64} ", fetcher, param="image") == PNG


async def test_read_image_ref_fetches_http_urls(fetcher: SafeFetcher, image_host: str) -> None:
    assert await read_image_ref(f"{image_host}/cat.png", fetcher, param="image") == PNG


async def test_read_image_ref_keeps_the_ssrf_rules(image_host: str) -> None:
    strict = SafeFetcher(allow_private=False, timeout_s=5, max_bytes=1 << 20, max_redirects=2)
    try:
        with pytest.raises(InvalidRequest) as info:
            await read_image_ref(f"{image_host}/cat.png", strict, param="image")
    finally:
        await strict.aclose()

    assert "non-public" in info.value.message


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/cat.png", "file:///etc/passwd", "/local/cat.png", "cat.png", "", "javascript:x"],
)
async def test_read_image_ref_refuses_other_references(url: str, fetcher: SafeFetcher) -> None:
    with pytest.raises(InvalidRequest) as info:
        await read_image_ref(url, fetcher, param="images[1].image_url")

    assert info.value.param == "images[1].image_url"
    assert "http(s)" in info.value.message and "data:image" in info.value.message
