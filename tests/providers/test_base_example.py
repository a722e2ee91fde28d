"""The worked example in ``providers/base.py``'s docstring is real code: it registers, routes,
answers and maps errors (scrubbed) exactly as the docstring says."""

from __future__ import annotations

import base64
import sys
import types
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from imagegate.domain import ImageRequest, ImageResult
from imagegate.errors import UpstreamRejected
from imagegate.http import HttpClients
from imagegate.providers import base
from imagegate.providers.registry import Catalog, provider_class
from imagegate.settings import ChannelConfig, Settings
from tests.fakes.leaks import leaky_error
from tests.fakes.loopback import LoopbackServer
from tests.fakes.provider import tiny_png


class FakeDrawUpstream(LoopbackServer):
    api_key = "draw-key-0123456789"
    fail = False

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/draw", self._draw)

    async def _draw(self, request: web.Request) -> web.Response:
        if self.fail:
            return web.json_response({"error": leaky_error(self.api_key)}, status=422)
        assert request.headers["Authorization"] == f"Bearer {self.api_key}"
        assert (await request.json())["prompt"]
        png = base64.b64encode(tiny_png(16, 16)).decode()
        return web.json_response({"png": png, "usage": {"input_tokens": 3, "output_tokens": 9}})


@pytest.fixture(scope="module")
def draw_module() -> types.ModuleType:
    """The docstring's code block, loaded as the module ``imagegate.providers.draw`` would be."""
    doc = base.__doc__ or ""
    block = doc.split("# imagegate/providers/draw.py\n", 1)[1].split("\n\nIts test", 1)[0]
    code = "\n".join(line.removeprefix("    ") for line in block.splitlines())
    module = types.ModuleType("imagegate_docstring_draw")
    sys.modules[module.__name__] = module
    exec(compile(code, "providers/base.py docstring", "exec"), module.__dict__)
    return module


@pytest.fixture
async def upstream() -> AsyncIterator[FakeDrawUpstream]:
    async with FakeDrawUpstream() as fake:
        yield fake


async def test_the_docstring_provider_registers_and_draws(
    draw_module: types.ModuleType, upstream: FakeDrawUpstream, http: HttpClients
) -> None:
    assert provider_class("draw") is draw_module.DrawProvider
    channel = ChannelConfig(
        name="d", provider="draw", base_url=upstream.base_url, api_key=upstream.api_key, models=["sketch"]
    )
    catalog = Catalog(Settings(demo=False, channels=[channel]), http)
    provider = catalog.channels_for("sketch")[0].provider
    request = ImageRequest(operation="generate", model="sketch", prompt="a boat")
    events = [event async for event in provider.run(request, "sketch")]
    assert isinstance(events[-1], ImageResult) and events[-1].usage is not None
    assert events[-1].usage.output_tokens == 9
    assert not catalog.channels_for("sketch")[0].can_edit

    upstream.fail = True
    with pytest.raises(UpstreamRejected) as caught:
        async for _ in provider.run(request, "sketch"):
            pass
    assert upstream.api_key not in str(caught.value.to_body())

    with pytest.raises(ValueError, match="needs api_key"):
        Catalog(Settings(demo=False, channels=[channel.model_copy(update={"api_key": ""})]), http)
