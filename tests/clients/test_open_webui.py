"""Open WebUI 0.12's image requests, byte for byte as it sends them (SPEC §2, §3).

Open WebUI (backend/open_webui/routers/images.py) posts with aiohttp:
- generations: JSON ``{model, prompt, n, size}`` with ``Authorization`` and
  ``Content-Type: application/json``; no ``response_format`` for models matching
  ``IMAGE_URL_RESPONSE_MODELS_REGEX_PATTERN`` (default ``^gpt-image``), else ``b64_json``;
  ``size`` is ``IMAGE_SIZE``, default ``512x512``.
- edits: multipart with text fields ``model``, ``prompt`` and, when set, ``n``, ``size`` and
  ``background`` (all ``str()``-ed), and the images as ``image`` (one) or repeated ``image[]``,
  each named ``<uuid4>.png`` with the data URL's content type.
It then reads ``data[i].url`` (fetched through its own SSRF guard, which refuses private
addresses) or ``data[i].b64_json``. So a gateway on a private network must answer base64.
"""

from __future__ import annotations

import base64
import io
import uuid
from typing import Any

import aiohttp
import pytest
from PIL import Image

from tests.admin.helpers import admin, wait_for_log
from tests.conftest import GatewayFactory, LiveGateway, image_bytes
from tests.fakes.openai_upstream import FakeOpenAIUpstream

PROMPT = "a lighthouse on a cliff, watercolor"


@pytest.fixture
def webui_gateway(make_gateway: GatewayFactory, upstream: FakeOpenAIUpstream) -> LiveGateway:
    """gpt-image-1 (OpenAI's size list) set to the nearest size; gpt-image-2 strict (custom)."""
    return make_gateway(
        channels=[
            {
                "name": "fake-openai",
                "provider": "openai",
                "base_url": upstream.base_url,
                "api_key": upstream.api_key,
                "models": ["gpt-image-2", "gpt-image-1"],
                "timeout_s": 10,
            }
        ],
        models={"gpt-image-1": {"size_policy": "nearest"}},
    )


def create_key(gateway: LiveGateway, **fields: Any) -> str:
    with admin(gateway) as client:
        response = client.post("/keys", json={"name": "open-webui", **fields})
    assert response.status_code == 201, response.text
    secret: str = response.json()["key"]
    return secret


Answer = tuple[int, dict[str, Any]]


async def post(url: str, headers: dict[str, str], **kwargs: Any) -> Answer:
    async with aiohttp.ClientSession() as session, session.post(url, headers=headers, **kwargs) as r:
        body = await r.json()
        body["request_id"] = r.headers["X-Request-Id"]  # for the test, beside what the client reads
        return r.status, body


async def open_webui_generation(gateway: LiveGateway, key: str, model: str, **extra: Any) -> Answer:
    """``image_generations()`` for the "openai" engine: what it posts and how."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    data = {"model": model, "prompt": PROMPT, "n": 1, "size": "512x512", **extra}
    return await post(f"{gateway.url}/v1/images/generations", headers, json=data)


async def open_webui_edit(gateway: LiveGateway, key: str, images: list[bytes], **fields: Any) -> Answer:
    """``image_edits()`` for the "openai" engine: str() fields, then ``image`` or ``image[]`` files."""
    form = aiohttp.FormData()
    for name, value in {"model": "gpt-image-1", "prompt": PROMPT, **fields}.items():
        form.add_field(name, str(value))
    field = "image" if len(images) == 1 else "image[]"
    for data in images:
        form.add_field(field, io.BytesIO(data), filename=f"{uuid.uuid4()}.png", content_type="image/png")
    return await post(f"{gateway.url}/v1/images/edits", {"Authorization": f"Bearer {key}"}, data=form)


def decoded(item: dict[str, Any]) -> Image.Image:
    """What Open WebUI does with ``b64_json``: decode it and store it as an image file."""
    assert "url" not in item, "Open WebUI would try to fetch this URL and refuse a private address"
    image = Image.open(io.BytesIO(base64.b64decode(item["b64_json"])))
    image.load()
    return image


async def test_generation_with_a_b64_key_answers_base64_at_the_nearest_size(
    webui_gateway: LiveGateway, upstream: FakeOpenAIUpstream
) -> None:
    key = create_key(webui_gateway, response_format="b64_json")

    status, body = await open_webui_generation(webui_gateway, key, "gpt-image-1")

    assert status == 200, body
    image = decoded(body["data"][0])
    assert (image.format, image.size) == ("PNG", (1024, 1024))
    assert body["size"] == "1024x1024"  # the size made, not the size asked
    assert upstream.requests[-1].body["size"] == "1024x1024"
    assert wait_for_log(webui_gateway, body["request_id"])["size"] == "1024x1024"


async def test_without_a_key_default_the_gateway_default_stays_url(webui_gateway: LiveGateway) -> None:
    key = create_key(webui_gateway)

    _, body = await open_webui_generation(webui_gateway, key, "gpt-image-1")

    assert set(body["data"][0]) == {"url"}
    # The documented fix for Open WebUI without a b64 key: IMAGE_URL_RESPONSE_MODELS_REGEX_PATTERN='^$'
    # makes it send response_format=b64_json for every model.
    _, asked = await open_webui_generation(webui_gateway, key, "gpt-image-1", response_format="b64_json")
    assert decoded(asked["data"][0]).size == (1024, 1024)


async def test_a_strict_model_still_refuses_512(webui_gateway: LiveGateway) -> None:
    key = create_key(webui_gateway, response_format="b64_json")

    status, body = await open_webui_generation(webui_gateway, key, "gpt-image-2")

    assert status == 400
    error = body["error"]
    assert error["param"] == "size" and "655,360" in error["message"]


async def test_edit_with_one_image_field(webui_gateway: LiveGateway, upstream: FakeOpenAIUpstream) -> None:
    key = create_key(webui_gateway, response_format="b64_json")

    status, body = await open_webui_edit(
        webui_gateway, key, [image_bytes((512, 512))], n=1, size="512x512", background="transparent"
    )

    assert status == 200, body
    image = decoded(body["data"][0])
    assert (image.size, image.mode) == ((1024, 1024), "RGBA")
    sent = upstream.requests[-1]
    assert (len(sent.images), sent.body["size"], sent.body["background"]) == (1, "1024x1024", "transparent")


async def test_edit_with_repeated_image_brackets(
    webui_gateway: LiveGateway, upstream: FakeOpenAIUpstream
) -> None:
    key = create_key(webui_gateway, response_format="b64_json")
    pictures = [image_bytes((256, 256), color=(10, 200, 10)), image_bytes((300, 200), color=(10, 10, 200))]

    status, body = await open_webui_edit(webui_gateway, key, pictures, n=2, size="512x512")

    assert status == 200, body
    assert [decoded(item).size for item in body["data"]] == [(1024, 1024), (1024, 1024)]
    assert len(upstream.requests[-1].images) == 2


async def test_demo_model_with_the_nearest_policy(make_gateway: GatewayFactory) -> None:
    """The built-in demo model (custom rule) with ``size_policy = "nearest"``: 512x512 -> 816x816."""
    gateway = make_gateway(models={"demo": {"sizes": "custom", "size_policy": "nearest"}})
    key = create_key(gateway, response_format="b64_json")

    _, body = await open_webui_generation(gateway, key, "demo")

    assert body["size"] == "816x816"
    assert decoded(body["data"][0]).size == (816, 816)
