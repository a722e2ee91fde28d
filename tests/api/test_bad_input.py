"""Bad input, end to end: every mistake a client can make gets OpenAI's error envelope.

Each case asserts the status, the exact envelope (``{"error": {message, type, param, code}}``)
with a message a developer can act on, the ``param`` SPEC §2/§3/§6 ask for and the
``X-Request-Id`` header; after each test the gateways it used must still make an image.
"""

from __future__ import annotations

import base64
import http.client
import json
import struct
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import requests
from PIL import Image

from imagegate.app import create_app
from imagegate.settings import load_settings
from tests.conftest import ADMIN_KEY, LiveGateway, ServerThread, free_port, image_bytes

MB = 1024 * 1024
ALLOWED_SIZES = ["1024x1024", "1536x1024", "1024x1536", "auto"]
_UNSET = object()

# -- gateways, shared by the module: starting one per parametrized case would dominate runtime.


@pytest.fixture(scope="module")
def _servers() -> Iterator[list[ServerThread]]:
    servers: list[ServerThread] = []
    yield servers
    for server in servers:
        server.stop()


def _start(servers: list[ServerThread], data_dir: Path, **overrides: Any) -> LiveGateway:
    port = free_port()
    settings = load_settings(
        data_dir=data_dir / f"data-{port}", port=port, admin_key=ADMIN_KEY, log_level="WARNING", **overrides
    )
    server = ServerThread(create_app(settings), port)
    server.start()
    servers.append(server)
    return LiveGateway(settings=settings, url=f"http://127.0.0.1:{port}")


@pytest.fixture(scope="module")
def gw(_servers: list[ServerThread], tmp_path_factory: pytest.TempPathFactory) -> LiveGateway:
    """Default limits; ``demo`` capped at n=2 (custom sizes), ``listy`` with a list of sizes."""
    return _start(
        _servers,
        tmp_path_factory.mktemp("gw"),
        models={"demo": {"max_n": 2, "sizes": "custom"}, "listy": {"sizes": ALLOWED_SIZES}},
        channels=[{"name": "demo-list", "provider": "demo", "models": ["listy"]}],
    )


@pytest.fixture(scope="module")
def tight(_servers: list[ServerThread], tmp_path_factory: pytest.TempPathFactory) -> LiveGateway:
    """Small limits: 1 MB bodies, 0.25 MB images, 100,000 pixels per input image."""
    return _start(
        _servers, tmp_path_factory.mktemp("tight"), max_body_mb=1, max_image_mb=0.25, max_image_pixels=100_000
    )


@pytest.fixture(autouse=True)
def _still_serves(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every case, each gateway the test used still makes an image."""
    yield
    for name in ("gw", "tight"):
        if name in request.fixturenames:
            assert_serves(request.getfixturevalue(name))


# -- helpers ---------------------------------------------------------------------------------


def auth(key: str = ADMIN_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_serves(gateway: LiveGateway) -> None:
    resp = requests.post(
        f"{gateway.url}/v1/images/generations",
        json={"model": "demo", "prompt": "a red square", "size": "1024x640", "quality": "low"},
        headers=auth(),
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["data"][0]["url"].startswith(f"{gateway.url}/files/")


def assert_error(
    resp: requests.Response,
    status: int,
    *,
    param: object = _UNSET,
    code: object = _UNSET,
    type_: str = "invalid_request_error",
    contains: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The status, OpenAI's envelope and nothing else, the request id; returns ``error``."""
    assert resp.status_code == status, resp.text
    assert resp.headers.get("content-type", "").startswith("application/json"), resp.headers
    request_id = resp.headers.get("x-request-id", "")
    assert request_id.startswith("req_") and len(request_id) > 4, resp.headers
    body = json.loads(resp.content)
    assert list(body) == ["error"], body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and len(error["message"]) >= 10, error
    assert not error["message"].endswith(".."), error  # no doubled full stop
    assert error["type"] == type_, error
    assert error["param"] is None or isinstance(error["param"], str), error
    assert error["code"] is None or isinstance(error["code"], str), error
    if param is not _UNSET:
        assert error["param"] == param, error
    if code is not _UNSET:
        assert error["code"] == code, error
    for fragment in contains:
        assert fragment.lower() in error["message"].lower(), error
    return error


def generate(gateway: LiveGateway, body: Any, *, key: str = ADMIN_KEY) -> requests.Response:
    return requests.post(f"{gateway.url}/v1/images/generations", json=body, headers=auth(key), timeout=30)


def gen_body(**fields: Any) -> dict[str, Any]:
    return {"model": "demo", "prompt": "a red square", "size": "1024x640", **fields}


def edit_multipart(
    gateway: LiveGateway, files: list[tuple[str, Any]], *, key: str = ADMIN_KEY, **fields: Any
) -> requests.Response:
    """A multipart edit; ``fields`` are text parts (model and prompt default to valid ones)."""
    text = {"model": "demo", "prompt": "make it blue", **fields}
    parts = [(name, (None, str(value))) for name, value in text.items() if value is not None]
    return requests.post(f"{gateway.url}/v1/images/edits", files=parts + files, headers=auth(key), timeout=30)


def edit_json(gateway: LiveGateway, body: Any, *, key: str = ADMIN_KEY) -> requests.Response:
    return requests.post(f"{gateway.url}/v1/images/edits", json=body, headers=auth(key), timeout=30)


def png(size: tuple[int, int] = (64, 64), mode: str = "RGB", color: tuple[int, ...] = (200, 30, 30)) -> bytes:
    return image_bytes(size, "PNG", color, mode)


def data_url(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width``x``height`` pixels: a decompression bomb's shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1024, 9))
        + chunk(b"IEND", b"")
    )


def multipart(parts: list[tuple[str, bytes, str | None]], boundary: str = "xyz") -> bytes:
    out = b""
    for name, value, filename in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"
    return out


# -- prompt, model, n ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "param", "code"),
    [
        ({"prompt": None}, "prompt", "missing_required_parameter"),
        ({"prompt": ""}, "prompt", "invalid_value"),
        ({"prompt": "x" * 32001}, "prompt", "invalid_value"),
        ({"prompt": 42}, "prompt", "invalid_value"),
        ({"model": None}, "model", "missing_required_parameter"),
        ({"model": ""}, "model", "invalid_value"),
        ({"n": 0}, "n", "invalid_value"),
        ({"n": 11}, "n", "invalid_value"),
        ({"n": "two"}, "n", "invalid_value"),
    ],
    ids=[
        "no-prompt",
        "empty-prompt",
        "long-prompt",
        "numeric-prompt",
        "no-model",
        "empty-model",
        "n0",
        "n11",
        "n-str",
    ],
)
def test_generation_field_errors(gw: LiveGateway, fields: dict[str, Any], param: str, code: str) -> None:
    body = {key: value for key, value in gen_body(**fields).items() if value is not None}

    error = assert_error(generate(gw, body), 400, param=param, code=code)

    assert f"'{param}'" in error["message"]


def test_long_prompt_message_names_the_limit(gw: LiveGateway) -> None:
    assert_error(generate(gw, gen_body(prompt="x" * 32001)), 400, param="prompt", contains=("32000",))


def test_prompt_of_exactly_32000_chars_is_accepted(gw: LiveGateway) -> None:
    prompt = ("a calm lake at dawn " * 1600)[:32000]

    assert generate(gw, gen_body(prompt=prompt, quality="low")).status_code == 200


def test_a_long_unbroken_prompt_is_served_promptly(gw: LiveGateway) -> None:
    """A valid prompt with no spaces (a URL, base64, a CJK sentence) must not stall rendering."""
    resp = requests.post(
        f"{gw.url}/v1/images/generations",
        json=gen_body(prompt="x" * 1200, quality="low"),
        headers=auth(),
        timeout=5,
    )

    assert resp.status_code == 200, resp.text


def test_unknown_model_is_404_model_not_found(gw: LiveGateway) -> None:
    assert_error(
        generate(gw, gen_body(model="gpt-nope")),
        404,
        param="model",
        code="model_not_found",
        contains=("gpt-nope",),
    )


def test_unknown_model_through_the_sdk(gw: LiveGateway) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        gw.client().images.generate(model="gpt-nope", prompt="a cat")

    assert caught.value.code == "model_not_found"
    assert caught.value.param == "model"
    assert_error(caught.value.response, 404, param="model", code="model_not_found")  # type: ignore[arg-type]


def test_n_over_the_models_max(gw: LiveGateway) -> None:
    assert_error(generate(gw, gen_body(n=3)), 400, param="n", contains=("2",))


def test_n_at_the_models_max_is_accepted(gw: LiveGateway) -> None:
    resp = generate(gw, gen_body(n=2, response_format="b64_json"))

    assert resp.status_code == 200, resp.text
    assert len(resp.json()["data"]) == 2


# -- enums and ranges ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("quality", "ultra", ("low", "medium", "high", "auto")),
        ("background", "pink", ("transparent", "opaque", "auto")),
        ("output_format", "gif", ("png", "jpeg", "webp")),
        ("moderation", "strict", ("auto", "low")),
        ("response_format", "png", ("url", "b64_json")),
    ],
)
def test_bad_enum_on_generations(gw: LiveGateway, field: str, value: str, allowed: tuple[str, ...]) -> None:
    assert_error(generate(gw, gen_body(**{field: value})), 400, param=field, contains=allowed)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("output_compression", -1),
        ("output_compression", 101),
        ("partial_images", 4),
        ("partial_images", -1),
    ],
)
def test_out_of_range_number(gw: LiveGateway, field: str, value: int) -> None:
    assert_error(generate(gw, gen_body(**{field: value})), 400, param=field)


def test_out_of_range_number_with_stream_is_a_json_error(gw: LiveGateway) -> None:
    """Validation happens before the stream starts: a plain 400, not an SSE error event."""
    assert_error(generate(gw, gen_body(stream=True, partial_images=4)), 400, param="partial_images")


def test_bad_input_fidelity_on_multipart_edit(gw: LiveGateway) -> None:
    resp = edit_multipart(gw, [("image", ("a.png", png()))], input_fidelity="medium")

    assert_error(resp, 400, param="input_fidelity", contains=("high", "low"))


def test_bad_input_fidelity_on_json_edit(gw: LiveGateway) -> None:
    resp = edit_json(
        gw, {**gen_body(), "images": [{"image_url": data_url(png())}], "input_fidelity": "medium"}
    )

    assert_error(resp, 400, param="input_fidelity", contains=("high", "low"))


@pytest.mark.parametrize("output_format", ["jpeg"])
def test_transparent_background_needs_png_or_webp(gw: LiveGateway, output_format: str) -> None:
    resp = generate(gw, gen_body(background="transparent", output_format=output_format))

    error = assert_error(resp, 400, contains=("png", "webp"))
    assert error["param"] in ("background", "output_format")


# -- sizes (SPEC §3) ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", ["big", "1024x", "x1024", "1024*1024", "-16x1024", "1024x1024x2"])
def test_malformed_size(gw: LiveGateway, size: str) -> None:
    assert_error(generate(gw, gen_body(size=size)), 400, param="size", contains=("auto", "x"))


@pytest.mark.parametrize(
    ("size", "condition"),
    [
        ("100x100", "divisible by 16"),
        ("1000x1008", "divisible by 16"),
        ("512x512", "655,360"),
        ("2048x656", "3 times"),
        ("4096x1440", "at most 3840"),
        ("3840x2176", "8,294,400"),
    ],
    ids=["div16-small", "div16", "min-pixels", "ratio", "long-side", "max-pixels"],
)
def test_custom_rule_says_which_condition_failed(gw: LiveGateway, size: str, condition: str) -> None:
    error = assert_error(generate(gw, gen_body(size=size)), 400, param="size", contains=(size, "auto"))

    # The first sentence names the broken condition; the rest restates the whole rule.
    problem = error["message"].split("Custom sizes need")[0]
    assert condition in problem, error


@pytest.mark.parametrize("size", ["3840x2160", "2160x3840", "1024x640", "2048x688", "auto"])
def test_custom_rule_accepts_its_edges(gw: LiveGateway, size: str) -> None:
    resp = generate(gw, gen_body(size=size, quality="low", response_format="b64_json"))

    assert resp.status_code == 200, resp.text


def test_size_outside_a_list_rule_lists_the_allowed_sizes(gw: LiveGateway) -> None:
    resp = generate(gw, gen_body(model="listy", size="1024x640"))

    assert_error(resp, 400, param="size", contains=("1024x640", *ALLOWED_SIZES))


def test_size_inside_a_list_rule_is_accepted(gw: LiveGateway) -> None:
    assert generate(gw, gen_body(model="listy", size="1536x1024")).status_code == 200


# -- wrong endpoint, auth, permission --------------------------------------------------------


def test_chat_image_model_on_generations(gw: LiveGateway) -> None:
    resp = generate(gw, gen_body(model="demo-chat"))

    assert_error(resp, 400, param="model", contains=("/v1/chat/completions",))


def test_chat_image_model_on_edits(gw: LiveGateway) -> None:
    resp = edit_multipart(gw, [("image", ("a.png", png()))], model="demo-chat")

    assert_error(resp, 400, param="model", contains=("/v1/chat/completions",))


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer sk-wrong-key"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer   "},
        {"Authorization": f"Basic {ADMIN_KEY}"},
        {"Authorization": ADMIN_KEY},
    ],
    ids=["none", "wrong", "bearer-no-token", "bearer-blank", "basic", "no-scheme"],
)
@pytest.mark.parametrize("path", ["/v1/images/generations", "/v1/images/edits"])
def test_bad_authorization_is_401(gw: LiveGateway, headers: dict[str, str], path: str) -> None:
    resp = requests.post(f"{gw.url}{path}", json=gen_body(), headers=headers, timeout=30)

    error = assert_error(resp, 401, param=None)
    assert error["code"] in ("invalid_api_key", "missing_api_key"), error
    assert "key" in error["message"].lower() or "authorization" in error["message"].lower(), error


def test_bad_key_through_the_sdk(gw: LiveGateway) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        gw.client(api_key="sk-wrong").images.generate(model="demo", prompt="a cat")

    assert_error(caught.value.response, 401, code="invalid_api_key")  # type: ignore[arg-type]


def test_key_limited_to_other_models_is_403(gw: LiveGateway) -> None:
    key = gw.create_key(name="limited", models=["other"])

    assert_error(generate(gw, gen_body(), key=key), 403, param="model", contains=("demo",))
    resp = edit_multipart(gw, [("image", ("a.png", png()))], key=key)
    assert_error(resp, 403, param="model")
    with pytest.raises(openai.PermissionDeniedError):
        gw.client(api_key=key).images.generate(model="demo", prompt="a cat")


# -- body framing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"{", b'{"model": "demo", "prompt": }', b"", b"not json", b"\xff\xfe"],
    ids=["open-brace", "bad-value", "empty", "text", "binary"],
)
def test_malformed_json(gw: LiveGateway, body: bytes) -> None:
    resp = requests.post(
        f"{gw.url}/v1/images/generations",
        data=body,
        headers={**auth(), "Content-Type": "application/json"},
        timeout=30,
    )

    assert_error(resp, 400, contains=("json",))


@pytest.mark.parametrize(
    "body", [[gen_body()], "a string", 42, None], ids=["array", "string", "number", "null"]
)
def test_json_that_is_not_an_object(gw: LiveGateway, body: Any) -> None:
    resp = requests.post(
        f"{gw.url}/v1/images/generations",
        data=json.dumps(body),
        headers={**auth(), "Content-Type": "application/json"},
        timeout=30,
    )

    assert_error(resp, 400, contains=("object",))


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


# -- edits: inputs ---------------------------------------------------------------------------


def test_multipart_edit_without_an_image(gw: LiveGateway) -> None:
    assert_error(edit_multipart(gw, []), 400, param="image", contains=("image",))


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


def test_seventeen_images_in_a_json_edit(gw: LiveGateway) -> None:
    body = {**gen_body(), "images": [{"image_url": data_url(png())}] * 17}

    assert_error(edit_json(gw, body), 400, param="images", contains=("16",))


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


def test_bad_mask_in_a_json_edit(gw: LiveGateway) -> None:
    body = {**gen_body(), "images": [{"image_url": data_url(png())}], "mask": {"image_url": data_url(png())}}

    assert_error(edit_json(gw, body), 400, param="mask", contains=("alpha",))


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


# -- forward compatibility -------------------------------------------------------------------


def test_unknown_fields_are_accepted_on_generations(gw: LiveGateway) -> None:
    resp = generate(gw, gen_body(future_option=True, style={"mood": "calm"}, input_fidelity="high"))

    assert resp.status_code == 200, resp.text


def test_unknown_fields_are_accepted_on_edits(gw: LiveGateway) -> None:
    resp = edit_multipart(gw, [("image", ("a.png", png()))], future_option="yes")
    assert resp.status_code == 200, resp.text
    body = {**gen_body(), "images": [{"image_url": data_url(png())}], "future_option": [1, 2]}
    assert edit_json(gw, body).status_code == 200


def test_unknown_fields_through_the_sdk(gw: LiveGateway) -> None:
    result = gw.client().images.generate(
        model="demo", prompt="a cat", size="1024x640", extra_body={"future_option": {"a": 1}}
    )

    assert result.data is not None and result.data[0].url


# -- size limits (a gateway with small limits) -----------------------------------------------


def _two_mb_chunks() -> Iterator[bytes]:
    for _ in range(32):
        yield b"x" * 65536


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_oversized_json_body_is_413(tight: LiveGateway, chunked: bool) -> None:
    data: Any = _two_mb_chunks() if chunked else b"x" * (2 * MB)
    resp = requests.post(
        f"{tight.url}/v1/images/generations",
        data=data,
        headers={**auth(), "Content-Type": "application/json"},
        timeout=30,
    )

    assert_error(resp, 413, code="request_too_large", contains=("1 MB",))


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_oversized_multipart_body_is_413(tight: LiveGateway, chunked: bool) -> None:
    head = multipart([("prompt", b"hi", None), ("model", b"demo", None)])
    head += b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n' + png()
    tail = b"\r\n--xyz--\r\n"

    def stream() -> Iterator[bytes]:
        yield head
        yield from _two_mb_chunks()
        yield tail

    data: Any = stream() if chunked else b"".join(stream())
    resp = requests.post(
        f"{tight.url}/v1/images/edits",
        data=data,
        headers={**auth(), "Content-Type": "multipart/form-data; boundary=xyz"},
        timeout=30,
    )

    assert_error(resp, 413, code="request_too_large", contains=("1 MB",))


def test_oversized_body_is_checked_before_auth_is_needed(tight: LiveGateway) -> None:
    resp = requests.post(
        f"{tight.url}/v1/images/generations",
        data=b"x" * (2 * MB),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )

    assert resp.status_code in (401, 413)
    assert_error(resp, resp.status_code)


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


# -- paths -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/files/../../etc/passwd",
        "/files/..%2F..%2Fetc%2Fpasswd",
        "/files/20261121/..%2F..%2F..%2Fetc%2Fpasswd",
        "/files/20261121/notahash.png",
        "/files/20261121/" + "0" * 64 + ".png",
        "/files/20261121/" + "0" * 64 + ".gif",
        "/files/2026/" + "0" * 64 + ".png",
        "/files/%2e%2e/imagegate.db",
    ],
)
def test_files_outside_the_store_are_404(gw: LiveGateway, path: str) -> None:
    """Sent raw (no client-side dot-segment cleanup) so the gateway sees the path as written."""
    conn = http.client.HTTPConnection("127.0.0.1", int(gw.url.rsplit(":", 1)[1]), timeout=30)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        status, headers = resp.status, resp.headers
    finally:
        conn.close()

    assert status == 404, body
    assert b"root:" not in body
    fake = requests.Response()
    fake.status_code, fake._content = status, body
    fake.headers.update(dict(headers.items()))
    assert_error(fake, 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/nope"), ("POST", "/v1/images/variations"), ("GET", "/v1/images/generations/x")],
)
def test_unknown_path_is_404_envelope(gw: LiveGateway, method: str, path: str) -> None:
    resp = requests.request(method, f"{gw.url}{path}", headers=auth(), timeout=30)

    assert_error(resp, 404, contains=(path,))


def test_wrong_method_is_an_envelope(gw: LiveGateway) -> None:
    resp = requests.get(f"{gw.url}/v1/images/generations", headers=auth(), timeout=30)

    assert resp.status_code == 405
    assert_error(resp, 405, type_=resp.json()["error"]["type"])
