"""jsonsplice must agree with orjson exactly, whatever surrounds the large strings."""

from __future__ import annotations

import base64
import os

import orjson
import pytest

from imagegate import jsonsplice

BIG = base64.b64encode(os.urandom(200_000)).decode()

BODIES = [
    {"created": 1, "data": [{"b64_json": BIG}], "usage": {"input_tokens": 3}},
    {"data": [{"b64_json": BIG, "revised_prompt": 'says "b64_json": "x"'}, {"b64_json": "small"}]},
    {"data": [{"b64_json": BIG}, {"b64_json": BIG[:-4]}, {"url": "https://x/y.png"}]},
    {"type": "image_generation.completed", "b64_json": BIG, "size": "1024x1024"},
    {"no_images": True, "list": [1, 2, 3]},
    [{"b64_json": BIG}],
]


@pytest.mark.parametrize("body", BODIES)
def test_round_trip_matches_orjson(body: object) -> None:
    raw = orjson.dumps(body)

    assert jsonsplice.loads(raw) == body
    assert jsonsplice.dumps(body) == raw


def test_whitespace_and_pretty_printing() -> None:
    raw = b'{\n  "data": [ { "b64_json" :\t"' + BIG.encode() + b'" } ]\n}'

    assert jsonsplice.loads(raw) == {"data": [{"b64_json": BIG}]}


def test_escaped_slashes_fall_back_to_the_parser() -> None:
    raw = b'{"b64_json": "' + BIG.replace("/", "\\/").encode() + b'"}'

    assert jsonsplice.loads(raw) == {"b64_json": BIG}


def test_large_strings_that_need_escaping_are_encoded_normally() -> None:
    body = {"text": 'quote " and backslash \\ ' * 10_000, "b64_json": BIG}

    assert jsonsplice.dumps(body) == orjson.dumps(body)


@pytest.mark.parametrize(
    "raw", [b'{"b64_json": "' + BIG.encode(), b"not json", b'{"b64_json": ' + BIG.encode()]
)
def test_invalid_json_raises_like_orjson(raw: bytes) -> None:
    with pytest.raises(orjson.JSONDecodeError):
        jsonsplice.loads(raw)


def test_views_are_zero_copy_slices_that_round_trip() -> None:
    body = {"data": [{"b64_json": BIG}, {"b64_json": "small"}], "size": "1024x1024"}
    raw = orjson.dumps(body)

    parsed = jsonsplice.loads(raw, views=True)

    view = parsed["data"][0]["b64_json"]
    assert isinstance(view, memoryview) and view.obj is raw  # a window on the body, not a copy
    assert bytes(view) == BIG.encode()
    assert parsed["data"][1]["b64_json"] == "small"
    assert jsonsplice.dumps(parsed) == raw


def test_prefix_and_suffix_are_joined_in() -> None:
    body = {"b64_json": BIG}

    assert (
        jsonsplice.dumps(body, prefix=b"data: ", suffix=b"\n\n") == b"data: " + orjson.dumps(body) + b"\n\n"
    )
    assert jsonsplice.dumps({"a": 1}, prefix=b"<", suffix=b">") == b'<{"a":1}>'


def test_parts_join_to_the_same_bytes_and_keep_large_values_uncopied() -> None:
    raw = orjson.dumps({"data": [{"b64_json": BIG}]})
    body = jsonsplice.loads(raw, views=True)

    parts = jsonsplice.dump_parts(body, prefix=b"data: ", suffix=b"\n\n")

    assert b"".join(parts) == b"data: " + raw + b"\n\n"
    assert any(isinstance(part, memoryview) and part.obj is raw for part in parts)
