"""Bad input on /v1/images/generations: fields, enums, sizes, the JSON body, forward compatibility."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
import requests

from tests.api.bad_input.helpers import (
    ALLOWED_SIZES,
    LOOKALIKE_SIZES,
    assert_error,
    auth,
    gen_body,
    generate,
)
from tests.conftest import GatewayFactory, LiveGateway
from tests.fakes.openai_upstream import FakeOpenAIUpstream

# -- prompt, model, n -------------------------------------------------------------------------------


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


def test_chat_image_model_on_generations(gw: LiveGateway) -> None:
    resp = generate(gw, gen_body(model="demo-chat"))

    assert_error(resp, 400, param="model", contains=("/v1/chat/completions",))


# -- enums and ranges -------------------------------------------------------------------------------


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


@pytest.mark.parametrize("output_format", ["jpeg"])
def test_transparent_background_needs_png_or_webp(gw: LiveGateway, output_format: str) -> None:
    resp = generate(gw, gen_body(background="transparent", output_format=output_format))

    error = assert_error(resp, 400, contains=("png", "webp"))
    assert error["param"] in ("background", "output_format")


# -- sizes (SPEC §3) --------------------------------------------------------------------------------


@pytest.mark.parametrize("size", ["big", "1024x", "x1024", "1024*1024", "-16x1024", "1024x1024x2"])
def test_malformed_size(gw: LiveGateway, size: str) -> None:
    assert_error(generate(gw, gen_body(size=size)), 400, param="size", contains=("auto", "x"))


@pytest.mark.parametrize("size", LOOKALIKE_SIZES, ids=ascii)
@pytest.mark.parametrize("model", ["demo", "listy"])
def test_sizes_in_other_digits_or_with_a_newline_are_refused(gw: LiveGateway, model: str, size: str) -> None:
    assert_error(generate(gw, gen_body(model=model, size=size)), 400, param="size", contains=("ASCII",))


def test_lookalike_sizes_never_reach_the_upstream(
    make_gateway: GatewayFactory, upstream: FakeOpenAIUpstream
) -> None:
    channel = {
        "name": "fake",
        "provider": "openai",
        "base_url": upstream.base_url,
        "api_key": upstream.api_key,
    }
    gateway = make_gateway(channels=[{**channel, "models": ["gpt-image-2", "any-size-model"]}])

    for model in ("gpt-image-2", "any-size-model"):  # the "custom" rule and the "any" rule
        for size in LOOKALIKE_SIZES:
            assert_error(generate(gateway, gen_body(model=model, size=size)), 400, param="size")
    assert upstream.requests == []

    assert generate(gateway, gen_body(model="any-size-model", size="1024x1024")).status_code == 200
    assert upstream.requests[-1].body["size"] == "1024x1024"


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


# -- the JSON body ----------------------------------------------------------------------------------


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


# -- forward compatibility --------------------------------------------------------------------------


def test_unknown_fields_are_accepted_on_generations(gw: LiveGateway) -> None:
    resp = generate(gw, gen_body(future_option=True, style={"mood": "calm"}, input_fidelity="high"))

    assert resp.status_code == 200, resp.text


def test_unknown_fields_through_the_sdk(gw: LiveGateway) -> None:
    result = gw.client().images.generate(
        model="demo", prompt="a cat", size="1024x640", extra_body={"future_option": {"a": 1}}
    )

    assert result.data is not None and result.data[0].url
