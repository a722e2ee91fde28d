"""Sizes are ``auto`` or ``WxH`` in ASCII digits, the whole string and nothing around it (SPEC §3)."""

from __future__ import annotations

import pytest

from imagegate.errors import InvalidRequest
from imagegate.media.sizes import SizeRule, check_size, match_size, parse_size


def in_digits(text: str, zero: str) -> str:
    """``text`` with its ASCII digits written in another script (``zero`` is that script's 0)."""
    return "".join(chr(ord(zero) + int(char)) if "0" <= char <= "9" else char for char in text)


# Strings a lenient parser (``\d``, ``$``, ``int()``, ``strip()``) would read as 1024x1024.
LOOKALIKES = [
    in_digits("1024x1024", "\uff10"),  # full-width digits
    in_digits("1024x1024", "\u0660"),  # Arabic-Indic digits
    in_digits("1024x1024", "\u06f0"),  # extended Arabic-Indic (Persian) digits
    in_digits("1024x1024", "\u0966"),  # Devanagari digits
    in_digits("1024", "\uff10") + "x1024",  # one side only
    "1024x1024\n",
    "1024x1024\r\n",
    "\n1024x1024",
    " 1024x1024",
    "1024x1024 ",
    "1024 x 1024",
    "1024X1024",
    "1024×1024",
    "+1024x1024",
    "1_024x1_024",
    "1024x1024\x00",
]
IDS = [ascii(text) for text in LOOKALIKES]


@pytest.mark.parametrize("text", LOOKALIKES, ids=IDS)
def test_only_ascii_digits_in_the_whole_string_are_a_size(text: str) -> None:
    assert match_size(text) is None
    with pytest.raises(InvalidRequest) as caught:
        parse_size(text)
    assert caught.value.param == "size"
    assert "ASCII" in caught.value.message


@pytest.mark.parametrize("rule", ["custom", "any", ["1024x1024", "auto"]], ids=str)
@pytest.mark.parametrize("text", LOOKALIKES, ids=IDS)
def test_every_rule_refuses_lookalikes(text: str, rule: SizeRule) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_size(text, rule, model="m", param="metadata.size")
    assert caught.value.param == "metadata.size"


@pytest.mark.parametrize(
    ("text", "dims"), [("1024x1024", (1024, 1024)), ("16x99999", (16, 99999)), ("0001x0002", (1, 2))]
)
def test_plain_sizes_parse(text: str, dims: tuple[int, int]) -> None:
    assert match_size(text) == dims
    assert parse_size(text) == dims


def test_auto_is_no_dimensions_and_other_words_are_refused() -> None:
    assert parse_size("auto") is None
    assert match_size("auto") is None
    for text in ("AUTO", "auto\n", "", "x", "100000x1"):
        with pytest.raises(InvalidRequest):
            parse_size(text)
