"""Bad input on /v1/chat/completions with a chat-image model: the size, from a prompt prefix or metadata."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.api.bad_input.helpers import (
    ARABIC_INDIC_SIZE,
    FULL_WIDTH_SIZE,
    LOOKALIKE_SIZES,
    assert_error,
    auth,
)
from tests.conftest import LiveGateway


def chat(gateway: LiveGateway, body: dict[str, Any]) -> requests.Response:
    return requests.post(f"{gateway.url}/v1/chat/completions", json=body, headers=auth(), timeout=30)


def ask(text: str, **fields: Any) -> dict[str, Any]:
    return {"model": "demo-chat", "messages": [{"role": "user", "content": text}], **fields}


@pytest.mark.parametrize("size", [FULL_WIDTH_SIZE, ARABIC_INDIC_SIZE], ids=ascii)
def test_a_size_prefix_in_other_digits_is_refused(gw: LiveGateway, size: str) -> None:
    assert_error(chat(gw, ask(f"{size} 'a red fox'")), 400, param="size", contains=("ASCII",))


@pytest.mark.parametrize("size", LOOKALIKE_SIZES, ids=ascii)
def test_a_metadata_size_in_other_digits_or_with_a_newline_is_refused(gw: LiveGateway, size: str) -> None:
    resp = chat(gw, ask("a red fox", metadata={"size": size}))

    assert_error(resp, 400, param="metadata.size", contains=("ASCII",))


def test_an_ascii_size_prefix_is_accepted(gw: LiveGateway) -> None:
    resp = chat(gw, ask("1024x640 'a red fox'", metadata={"quality": "low"}))

    assert resp.status_code == 200, resp.text
    assert "![image](" in resp.json()["choices"][0]["message"]["content"]
