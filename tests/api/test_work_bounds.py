"""Work is bounded before it is done (SPEC §8): a small upload must not cost a gigabyte.

16 PNGs of 6320x6320 pixels compress to a couple of MB but decode to over a gigabyte. Quota and
access are checked before any input is decoded, and the request's pixels are measured from the
headers against its budget before any is decoded.
"""

from __future__ import annotations

import io
import time

import openai
import pytest
from PIL import Image

from tests.billing.accounts import make_key
from tests.conftest import GatewayFactory, LiveGateway

HUGE = 6320


@pytest.fixture(scope="module")
def huge_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (HUGE, HUGE), 128).save(buffer, "PNG", compress_level=9)
    return buffer.getvalue()


def _edit(gateway: LiveGateway, secret: str, images: list[bytes]) -> float:
    started = time.perf_counter()
    gateway.client(secret, timeout=60).images.edit(model="demo", image=images, prompt="tint")
    return time.perf_counter() - started


def test_sixteen_huge_pngs_are_refused_from_their_headers(gateway: LiveGateway, huge_png: bytes) -> None:
    started = time.perf_counter()
    with pytest.raises(openai.BadRequestError) as caught:
        _edit(gateway, gateway.create_key("big"), [huge_png] * 16)
    assert caught.value.code == "image_too_large"
    assert "pixels" in caught.value.message
    # Decoding them would take seconds; reading 16 headers takes milliseconds.
    assert time.perf_counter() - started < 2.0


def test_a_key_without_quota_is_refused_before_its_images_are_decoded(
    make_gateway: GatewayFactory, huge_png: bytes
) -> None:
    gateway = make_gateway(models={"demo": {"sizes": "custom", "price": {"per_image": {"default": 0.01}}}})
    _, secret = make_key(gateway.settings.resolved_database_url, quota_usd="0")
    started = time.perf_counter()
    with pytest.raises(openai.RateLimitError) as caught:
        _edit(gateway, secret, [huge_png] * 2)
    assert caught.value.code == "insufficient_quota"
    assert time.perf_counter() - started < 1.5


def test_a_key_the_model_is_not_open_to_is_refused_before_decoding(
    gateway: LiveGateway, huge_png: bytes
) -> None:
    secret = gateway.create_key("other-models", models=["gpt-image-2"])
    with pytest.raises(openai.PermissionDeniedError):
        _edit(gateway, secret, [huge_png] * 2)
