"""/v1/images/edits with the openai SDK (multipart) and the JSON body, demo and fake upstream."""

from __future__ import annotations

import base64
import io

import pytest
import requests
from openai import OpenAI
from PIL import Image

from tests.conftest import ADMIN_KEY, LiveGateway, image_bytes, open_image
from tests.fakes.openai_upstream import FakeOpenAIUpstream


def _red(size: tuple[int, int] = (1024, 1024)) -> bytes:
    return image_bytes(size, "PNG", (220, 20, 20))


def _mask(size: tuple[int, int] = (1024, 1024)) -> bytes:
    """Opaque everywhere but a transparent square in the middle: only that part may change."""
    mask = Image.new("RGBA", size, (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (size[0] // 4, size[1] // 4, size[0] * 3 // 4, size[1] * 3 // 4))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    return buffer.getvalue()


def _decode(b64: str | None) -> Image.Image:
    return open_image(base64.b64decode(b64 or ""))


def test_single_image_edit_derives_from_the_input(client: OpenAI) -> None:
    result = client.images.edit(
        model="demo",
        image=("red.png", _red(), "image/png"),
        prompt="make it glow",
        response_format="b64_json",
    )

    assert result.data is not None
    image = _decode(result.data[0].b64_json).convert("RGB")
    assert image.size == (1024, 1024)
    red, green, blue = image.resize((1, 1)).getpixel((0, 0))  # type: ignore[misc]
    assert red > green and red > blue


def test_three_images_and_raw_bytes_as_the_sdk_sends_them(client: OpenAI) -> None:
    images = [
        image_bytes((1024, 1024), fmt, color)
        for fmt, color in (("PNG", (200, 0, 0)), ("JPEG", (0, 200, 0)), ("WEBP", (0, 0, 200)))
    ]
    result = client.images.edit(
        model="demo", image=images, prompt="combine them", size="1536x1024", output_format="webp"
    )

    assert result.data is not None and result.data[0].url is not None
    image = open_image(requests.get(result.data[0].url, timeout=10).content)
    assert (image.format, image.size) == ("WEBP", (1536, 1024))


def test_mask_limits_the_change(client: OpenAI) -> None:
    source = _red()
    result = client.images.edit(
        model="demo",
        image=source,
        mask=_mask(),
        prompt="a blue window",
        size="1024x1024",
        response_format="b64_json",
    )

    assert result.data is not None
    edited = _decode(result.data[0].b64_json).convert("RGB")
    original = open_image(source).convert("RGB")
    assert edited.getpixel((10, 10)) == original.getpixel((10, 10))  # masked: untouched
    assert edited.crop((256, 256, 768, 768)).tobytes() != original.crop((256, 256, 768, 768)).tobytes()


def test_json_body_with_data_url_images(gateway: LiveGateway) -> None:
    data_url = "data:image/png;base64," + base64.b64encode(_red((512, 512))).decode()
    response = requests.post(
        f"{gateway.url}/v1/images/edits",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        json={
            "model": "demo",
            "prompt": "sepia",
            "images": [{"image_url": data_url}] * 2,
            "response_format": "b64_json",
            "size": "1024x1024",
        },
        timeout=30,
    )

    assert response.status_code == 200, response.text
    assert _decode(response.json()["data"][0]["b64_json"]).size == (1024, 1024)


def test_json_body_with_remote_image_urls(make_gateway: object) -> None:
    # The source image is hosted by a first gateway; the second may fetch loopback URLs only
    # because this test allows private fetches explicitly (SPEC §8).
    source_gateway = make_gateway()  # type: ignore[operator]
    hosted = source_gateway.client().images.generate(model="demo", prompt="source", size="1024x1024")
    fetching_gateway = make_gateway(allow_private_fetch=True)  # type: ignore[operator]

    response = requests.post(
        f"{fetching_gateway.url}/v1/images/edits",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        json={
            "model": "demo",
            "prompt": "watercolor",
            "images": [{"image_url": hosted.data[0].url}],
            "mask": None,
            "size": "auto",
            "output_format": "jpeg",
        },
        timeout=30,
    )

    assert response.status_code == 200, response.text
    image = open_image(requests.get(response.json()["data"][0]["url"], timeout=10).content)
    assert (image.format, image.size) == ("JPEG", (1024, 1024))


def test_numbered_image_fields(gateway: LiveGateway) -> None:
    files = [("image[1]", ("b.png", _red((512, 512)))), ("image[0]", ("a.png", _red((512, 512))))]
    response = requests.post(
        f"{gateway.url}/v1/images/edits",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        data={"model": "demo", "prompt": "x", "size": "1024x1024"},
        files=files,
        timeout=30,
    )

    assert response.status_code == 200, response.text


class TestOpenAIUpstream:
    def test_one_image_goes_as_image(
        self, upstream_gateway: LiveGateway, upstream: FakeOpenAIUpstream
    ) -> None:
        result = upstream_gateway.client().images.edit(
            model="gpt-image-2",
            image=_red(),
            prompt="glow",
            input_fidelity="high",
            quality="low",
            size="1024x1024",
            response_format="b64_json",
        )

        sent = upstream.requests[-1]
        assert sent.path == "/v1/images/edits"
        assert [f.field for f in sent.images] == ["image"]
        assert sent.fields["input_fidelity"] == "high" and sent.fields["quality"] == "low"
        assert sent.fields["model"] == "gpt-image-2-2026-04-21"
        assert result.data is not None and _decode(result.data[0].b64_json).size == (1024, 1024)

    @pytest.mark.parametrize("with_mask", [False, True])
    def test_three_images_go_as_image_array(
        self, upstream_gateway: LiveGateway, upstream: FakeOpenAIUpstream, with_mask: bool
    ) -> None:
        images = [_red(), image_bytes((1024, 1024), "JPEG"), image_bytes((1024, 1024), "WEBP")]
        result = upstream_gateway.client().images.edit(
            model="gpt-image-2",
            image=images,
            prompt="basket",
            size="1536x1024",
            output_format="png",
            **({"mask": _mask()} if with_mask else {}),
        )

        sent = upstream.requests[-1]
        assert [f.field for f in sent.images] == ["image[]"] * 3
        assert [open_image(f.data).format for f in sent.images] == ["PNG", "JPEG", "WEBP"]
        assert (sent.mask is not None) == with_mask
        assert result.data is not None and result.data[0].url is not None
        image = open_image(requests.get(result.data[0].url, timeout=10).content)
        assert (image.format, image.size) == ("PNG", (1536, 1024))
