"""Bad input on /v1/images/edits: multipart and JSON bodies, input images and masks, image limits."""

from __future__ import annotations

import base64
import tempfile
from typing import Any

import pytest
import requests
from PIL import Image

from tests.api.bad_input.helpers import (
    assert_error,
    auth,
    data_url,
    edit_json,
    edit_multipart,
    gen_body,
    multipart,
    png,
    png_claiming,
)
from tests.conftest import LiveGateway, image_bytes

# -- fields -----------------------------------------------------------------------------------------


def test_bad_input_fidelity_on_multipart_edit(gw: LiveGateway) -> None:
    resp = edit_multipart(gw, [("image", ("a.png", png()))], input_fidelity="medium")

    assert_error(resp, 400, param="input_fidelity", contains=("high", "low"))


def test_bad_input_fidelity_on_json_edit(gw: LiveGateway) -> None:
    resp = edit_json(
        gw, {**gen_body(), "images": [{"image_url": data_url(png())}], "input_fidelity": "medium"}
    )

    assert_error(resp, 400, param="input_fidelity", contains=("high", "low"))


def test_chat_image_model_on_edits(gw: LiveGateway) -> None:
    resp = edit_multipart(gw, [("image", ("a.png", png()))], model="demo-chat")

    assert_error(resp, 400, param="model", contains=("/v1/chat/completions",))


@pytest.mark.parametrize(
    ("fields", "param"),
    [({"prompt": None}, "prompt"), ({"prompt": ""}, "prompt"), ({"model": None}, "model")],
    ids=["no-prompt", "empty-prompt", "no-model"],
)
def test_multipart_edit_without_prompt_or_model(gw: LiveGateway, fields: dict[str, Any], param: str) -> None:
    resp = edit_multipart(gw, [("image", ("a.png", png()))], **fields)

    assert_error(resp, 400, param=param, code="missing_required_parameter")


def test_multipart_edit_with_an_unknown_model(gw: LiveGateway) -> None:
    resp = edit_multipart(gw, [("image", ("a.png", png()))], model="gpt-nope")

    assert_error(resp, 404, param="model", code="model_not_found")


# -- body framing -----------------------------------------------------------------------------------


def test_json_array_on_edits(gw: LiveGateway) -> None:
    assert_error(edit_json(gw, [gen_body()]), 400, contains=("object",))


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "image/png", None], ids=str
)
def test_wrong_content_type_on_edits(gw: LiveGateway, content_type: str | None) -> None:
    headers = auth() | ({"Content-Type": content_type} if content_type else {})
    resp = requests.post(
        f"{gw.url}/v1/images/edits", data=b"prompt=x&model=demo", headers=headers, timeout=30
    )

    assert_error(resp, 400, contains=("multipart/form-data", "application/json"))


def test_multipart_with_a_boundary_not_in_the_body(gw: LiveGateway) -> None:
    body = multipart([("prompt", b"hi", None), ("model", b"demo", None)], boundary="other") + b"--other--\r\n"
    resp = requests.post(
        f"{gw.url}/v1/images/edits",
        data=body,
        headers={**auth(), "Content-Type": "multipart/form-data; boundary=xyz"},
        timeout=30,
    )

    assert_error(resp, 400, contains=("multipart",))


def test_multipart_without_a_boundary(gw: LiveGateway) -> None:
    resp = requests.post(
        f"{gw.url}/v1/images/edits",
        data=multipart([("prompt", b"hi", None)]),
        headers={**auth(), "Content-Type": "multipart/form-data"},
        timeout=30,
    )

    assert_error(resp, 400, contains=("multipart",))


@pytest.mark.parametrize("cut", ["mid-file", "no-closing-boundary"])
def test_truncated_multipart(gw: LiveGateway, cut: str) -> None:
    """A body cut short is reported as such, not as "no image" (the client did send one)."""
    head = multipart([("prompt", b"hi", None), ("model", b"demo", None)])
    if cut == "mid-file":
        body = (
            head
            + b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
            + png()[:40]
        )
    else:
        body = head + multipart([("image", png(), "a.png")])
    resp = requests.post(
        f"{gw.url}/v1/images/edits",
        data=body,
        headers={**auth(), "Content-Type": "multipart/form-data; boundary=xyz"},
        timeout=30,
    )

    assert_error(resp, 400, param=None, contains=("multipart",))


# -- multipart inputs -------------------------------------------------------------------------------


def test_multipart_edit_without_an_image(gw: LiveGateway) -> None:
    assert_error(edit_multipart(gw, []), 400, param="image", contains=("image",))


@pytest.mark.parametrize("field", ["image", "image[]", "image[0]"])
@pytest.mark.parametrize(
    "data",
    [b"definitely not an image", b"", b"GIF89a" + b"\x00" * 32, b"\x89PNG\r\n\x1a\n" + b"\x00" * 40],
    ids=["text", "empty-file", "gif-magic", "png-magic-garbage"],
)
def test_non_image_bytes_name_the_field(gw: LiveGateway, field: str, data: bytes) -> None:
    resp = edit_multipart(gw, [(field, ("cat.png", data, "image/png"))])

    assert_error(resp, 400, param=field, contains=(field,))


def test_second_image_is_named_in_the_error(gw: LiveGateway) -> None:
    resp = edit_multipart(gw, [("image[0]", ("a.png", png())), ("image[1]", ("b.png", b"not an image"))])

    assert_error(resp, 400, param="image[1]")


def test_gif_image_is_refused(gw: LiveGateway) -> None:
    resp = edit_multipart(gw, [("image", ("cat.gif", image_bytes(fmt="GIF")))])

    assert_error(resp, 400, param="image", contains=("png", "jpeg", "webp"))


def test_gif_disguised_by_name_and_content_type_is_refused(gw: LiveGateway) -> None:
    resp = edit_multipart(gw, [("image", ("cat.png", image_bytes(fmt="GIF"), "image/png"))])

    assert_error(resp, 400, param="image")


def test_seventeen_images_are_too_many(gw: LiveGateway) -> None:
    files = [("image[]", (f"{i}.png", png())) for i in range(17)]

    assert_error(edit_multipart(gw, files), 400, param="image", contains=("16",))


def test_sixteen_images_are_accepted(gw: LiveGateway) -> None:
    files = [("image[]", (f"{i}.png", png())) for i in range(16)]

    resp = edit_multipart(gw, files, quality="low")

    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize(
    ("mask", "contains"),
    [
        (png((64, 64), "RGB"), ("alpha",)),
        (png((32, 32), "RGBA", (0, 0, 0, 0)), ("64x64", "32x32")),
        (image_bytes((64, 64), "JPEG"), ("png",)),
        (b"not a mask at all", ("mask",)),
    ],
    ids=["no-alpha", "wrong-size", "jpeg", "garbage"],
)
def test_bad_mask(gw: LiveGateway, mask: bytes, contains: tuple[str, ...]) -> None:
    resp = edit_multipart(gw, [("image", ("a.png", png())), ("mask", ("mask.png", mask))])

    assert_error(resp, 400, param="mask", contains=contains)


@pytest.mark.parametrize("field", ["image", "image[]", "mask"])
def test_image_field_sent_as_text(gw: LiveGateway, field: str) -> None:
    files = [("image", ("a.png", png()))] if field == "mask" else []

    resp = edit_multipart(gw, [*files, (field, (None, "hello"))])

    assert_error(resp, 400, param=field, contains=(field, "file"))


def test_empty_string_fields_from_the_sdk_mean_absent(gw: LiveGateway) -> None:
    """The SDK sends "" for unset options (mask included): they are absent, not invalid."""
    blanks = ["size", "quality", "background", "output_format", "output_compression", "n", "user", "mask"]
    files = [("image", ("a.png", png()))] + [(name, (None, "")) for name in blanks]

    resp = edit_multipart(gw, files, response_format="b64_json")

    assert resp.status_code == 200, resp.text
    assert len(resp.json()["data"]) == 1


def test_sdk_edit_with_options_left_as_none(gw: LiveGateway) -> None:
    result = gw.client().images.edit(
        image=("a.png", png(), "application/octet-stream"),
        prompt="make it blue",
        model="demo",
        response_format="b64_json",
        extra_body={"size": "", "quality": "", "user": ""},
    )

    assert result.data is not None and result.data[0].b64_json


# -- JSON inputs ------------------------------------------------------------------------------------


def test_seventeen_images_in_a_json_edit(gw: LiveGateway) -> None:
    body = {**gen_body(), "images": [{"image_url": data_url(png())}] * 17}

    assert_error(edit_json(gw, body), 400, param="images", contains=("16",))


def test_bad_mask_in_a_json_edit(gw: LiveGateway) -> None:
    body = {**gen_body(), "images": [{"image_url": data_url(png())}], "mask": {"image_url": data_url(png())}}

    assert_error(edit_json(gw, body), 400, param="mask", contains=("alpha",))


def test_json_edit_without_images(gw: LiveGateway) -> None:
    assert_error(edit_json(gw, gen_body()), 400, param="images", code="missing_required_parameter")
    assert_error(edit_json(gw, {**gen_body(), "images": []}), 400, param="images")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost/",
        "http://[::1]/x",
        "http://10.0.0.1/x",
        "http://2130706433/x",
    ],
    ids=["loopback-gateway", "metadata", "localhost", "ipv6-loopback", "private", "decimal-ip"],
)
def test_json_edit_refuses_non_public_urls(gw: LiveGateway, url: str) -> None:
    port = gw.url.rsplit(":", 1)[1]
    body = {**gen_body(), "images": [{"image_url": url.format(port=port)}]}

    assert_error(edit_json(gw, body), 400, param="images[0].image_url")


def test_json_edit_refuses_a_non_public_second_image_and_mask(gw: LiveGateway) -> None:
    body = {
        **gen_body(),
        "images": [{"image_url": data_url(png())}, {"image_url": "http://169.254.169.254/"}],
    }
    assert_error(edit_json(gw, body), 400, param="images[1].image_url")
    body = {
        **gen_body(),
        "images": [{"image_url": data_url(png())}],
        "mask": {"image_url": "http://localhost/m.png"},
    }
    assert_error(edit_json(gw, body), 400, param="mask.image_url")


@pytest.mark.parametrize(
    "url", ["ftp://example.com/a.png", "file:///etc/passwd", "gopher://x/", "/etc/passwd"]
)
def test_json_edit_refuses_other_schemes(gw: LiveGateway, url: str) -> None:
    body = {**gen_body(), "images": [{"image_url": url}]}

    assert_error(edit_json(gw, body), 400, param="images[0].image_url")


def test_json_edit_file_id_is_refused(gw: LiveGateway) -> None:
    body = {**gen_body(), "images": [{"file_id": "file-abc123"}]}

    error = assert_error(edit_json(gw, body), 400, contains=("image_url",))
    assert error["param"] is not None and error["param"].startswith("images[0]"), error


@pytest.mark.parametrize(
    "url",
    [
        "data:image/png;base64,!!!not base64!!!",
        "data:text/plain;base64,aGVsbG8=",
        "data:image/png,rawbytes",
        "data:image/png;base64,",
        "data:image/png;base64," + base64.b64encode(b"not an image").decode(),
        "data:image/gif;base64," + base64.b64encode(image_bytes(fmt="GIF")).decode(),
    ],
    ids=["bad-base64", "text-type", "not-base64", "empty", "not-an-image", "gif"],
)
def test_json_edit_bad_data_url(gw: LiveGateway, url: str) -> None:
    body = {**gen_body(), "images": [{"image_url": url}]}

    assert_error(edit_json(gw, body), 400, param="images[0].image_url")


@pytest.mark.parametrize(
    "ref", [{}, {"image_url": ""}, {"image_url": "data:x", "file_id": "f"}, "just-a-string"], ids=str
)
def test_json_edit_malformed_image_ref(gw: LiveGateway, ref: Any) -> None:
    error = assert_error(edit_json(gw, {**gen_body(), "images": [ref]}), 400)

    assert error["param"] is not None and error["param"].startswith("images[0]"), error


def test_json_edit_with_a_valid_data_url_succeeds(gw: LiveGateway) -> None:
    body = {**gen_body(), "images": [{"image_url": data_url(png())}], "response_format": "b64_json"}

    assert edit_json(gw, body).status_code == 200


# -- image limits (bytes and pixels per image) ------------------------------------------------------


def test_image_over_max_image_mb_is_413(tight: LiveGateway) -> None:
    big = png() + b"\x00" * 400_000  # a valid small PNG padded past 0.25 MB

    error = assert_error(edit_multipart(tight, [("image", ("a.png", big))]), 413, param="image")
    assert "0.25 MB" in error["message"], error


def test_data_url_over_max_image_mb_is_413(tight: LiveGateway) -> None:
    body = {**gen_body(), "images": [{"image_url": data_url(png() + b"\x00" * 400_000)}]}

    assert_error(edit_json(tight, body), 413, param="images[0].image_url")


def test_too_many_pixels(tight: LiveGateway) -> None:
    resp = edit_multipart(tight, [("image", ("a.png", png((400, 400))))])

    assert_error(resp, 400, param="image", contains=("pixels", "100000"))


@pytest.mark.parametrize("size", [(7000, 7000), (30000, 30000), (65535, 65535)], ids=str)
def test_pixel_bomb_header_is_refused_before_decoding(gw: LiveGateway, size: tuple[int, int]) -> None:
    bomb = png_claiming(*size)
    assert len(bomb) < 1000

    resp = edit_multipart(gw, [("image", ("bomb.png", bomb))])

    assert_error(resp, 400, param="image", contains=("pixels",))


def test_real_decompression_bomb_is_refused(tight: LiveGateway) -> None:
    """A genuine 2000x2000 PNG that compresses to a few KB: counted before it is decoded."""
    with tempfile.SpooledTemporaryFile() as out:
        Image.new("L", (2000, 2000), 0).save(out, "PNG", optimize=True)
        out.seek(0)
        bomb = out.read()
    assert len(bomb) < 50_000

    assert_error(
        edit_multipart(tight, [("image", ("bomb.png", bomb))]), 400, param="image", contains=("pixels",)
    )


# -- forward compatibility --------------------------------------------------------------------------


def test_unknown_fields_are_accepted_on_edits(gw: LiveGateway) -> None:
    resp = edit_multipart(gw, [("image", ("a.png", png()))], future_option="yes")
    assert resp.status_code == 200, resp.text
    body = {**gen_body(), "images": [{"image_url": data_url(png())}], "future_option": [1, 2]}
    assert edit_json(gw, body).status_code == 200
