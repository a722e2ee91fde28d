"""``size_policy = "nearest"``: the allowed size nearest to what a client sent (SPEC §3)."""

from __future__ import annotations

import itertools

import pytest

from imagegate.errors import InvalidRequest
from imagegate.media.sizes import check_size, custom_size_violation, nearest_size, parse_size

STANDARD = ["auto", "1024x1024", "1536x1024", "1024x1536"]


@pytest.mark.parametrize(
    ("asked", "rule", "expected"),
    [
        ("512x512", STANDARD, "1024x1024"),  # Open WebUI's default size
        ("1792x1024", STANDARD, "1536x1024"),  # dall-e-3's landscape stays landscape
        ("1024x1792", STANDARD, "1024x1536"),
        ("256x512", STANDARD, "1024x1536"),  # orientation beats area
        ("600x1000", ["1024x1024", "1792x1024"], "1024x1024"),  # no portrait size: closest area
        ("auto", ["1024x1024", "1792x1024"], "1024x1024"),  # auto not listed: the first size
        ("1536x1024", STANDARD, "1536x1024"),  # allowed sizes are kept
        ("auto", STANDARD, "auto"),
        ("512x512", "custom", "816x816"),  # the smallest square of at least 655,360 pixels
        ("1920x1080", "custom", "1920x1072"),  # sides to multiples of 16
        ("7680x4320", "custom", "3840x2160"),  # 8K down to the largest allowed area
        ("4000x1000", "custom", "3456x1152"),  # 4:1 narrowed to 3:1 at about the same area
        ("1000x4000", "custom", "1152x3456"),
        ("3840x2160", "custom", "3840x2160"),
        ("123x45678", "any", "123x45678"),  # "any" changes nothing (check_size still bounds it)
    ],
)
def test_nearest_size(asked: str, rule: str | list[str], expected: str) -> None:
    assert nearest_size(asked, rule) == expected  # type: ignore[arg-type]


def test_a_size_that_is_not_wxh_is_still_refused() -> None:
    with pytest.raises(InvalidRequest) as refused:
        nearest_size("big", STANDARD)
    assert refused.value.param == "size"


def orientation(size: str) -> int:
    dims = parse_size(size)
    assert dims is not None
    return (dims[0] > dims[1]) - (dims[0] < dims[1])


SIDES = [1, 16, 100, 333, 512, 640, 810, 1000, 1080, 1536, 2048, 3000, 3840, 5000, 9999]


@pytest.mark.parametrize(("width", "height"), list(itertools.product(SIDES, SIDES)))
def test_every_custom_answer_is_valid_and_keeps_the_orientation(width: int, height: int) -> None:
    asked = f"{width}x{height}"
    answer = nearest_size(asked, "custom")
    dims = parse_size(answer)
    assert dims is not None and custom_size_violation(*dims) is None, answer
    assert check_size(answer, "custom", model="m") == answer
    assert orientation(answer) == orientation(asked), (asked, answer)
    if custom_size_violation(width, height) is None:
        assert answer == asked
