"""Image sizes: parsing ``WxH`` and checking a size against a model's allowed set (SPEC §3)."""

from __future__ import annotations

import math
import re
from typing import Literal

from imagegate.errors import InvalidRequest

SizeRule = Literal["custom", "any"] | list[str]

# ASCII digits only (``\d`` would also take full-width or Arabic-Indic digits), matched against the
# whole string with fullmatch (``$`` would also let "1024x1024\n" through).
_SIZE = re.compile(r"([0-9]{1,5})x([0-9]{1,5})")

# The "custom" rule of the gpt-image-2 family.
CUSTOM_MULTIPLE = 16
CUSTOM_MIN_PIXELS = 655_360
CUSTOM_MAX_RATIO = 3
CUSTOM_MAX_SIDE = 3840
CUSTOM_MAX_PIXELS = 3840 * 2160


def match_size(text: str) -> tuple[int, int] | None:
    """``(width, height)`` when ``text`` is exactly ``WxH`` in ASCII digits, else None.

    The one place a size is read: every other parse of a size (requests, prices, providers)
    goes through here or :func:`parse_size`.
    """
    match = _SIZE.fullmatch(text)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))


def parse_size(size: str, *, param: str = "size") -> tuple[int, int] | None:
    """``(width, height)``, or None for ``auto``; raises for anything else."""
    if size == "auto":
        return None
    dims = match_size(size)
    if dims is None:
        raise InvalidRequest(
            f"Invalid size {size!r}: use 'auto' or WIDTHxHEIGHT in ASCII digits, e.g. '1024x1024'.",
            param=param,
        )
    return dims


def custom_size_violation(width: int, height: int) -> str | None:
    """Which condition of the custom-size rule a size breaks, in words; None if it is fine."""
    long_side, short_side = max(width, height), min(width, height)
    if width % CUSTOM_MULTIPLE or height % CUSTOM_MULTIPLE:
        return f"width and height must both be divisible by {CUSTOM_MULTIPLE}"
    if width * height < CUSTOM_MIN_PIXELS:
        return f"width x height must be at least {CUSTOM_MIN_PIXELS:,} pixels (got {width * height:,})"
    if long_side > CUSTOM_MAX_RATIO * short_side:
        return f"the long side may be at most {CUSTOM_MAX_RATIO} times the short side"
    if long_side > CUSTOM_MAX_SIDE:
        return f"the long side may be at most {CUSTOM_MAX_SIDE} pixels"
    if width * height > CUSTOM_MAX_PIXELS:
        return f"width x height may be at most {CUSTOM_MAX_PIXELS:,} pixels (3840x2160)"
    return None


ANY_MAX_SIDE = 4096


def check_size(size: str, rule: SizeRule, *, model: str, param: str = "size") -> str:
    """Return ``size`` when ``model`` accepts it; otherwise a 400 that says what is allowed.

    Rules: a list of exact sizes, ``custom`` (the gpt-image-2 family's rule) or ``any`` (any
    WxH up to 4096 a side: for upstreams whose sizes the gateway does not know).
    """
    dims = parse_size(size, param=param)
    if rule == "any":
        if dims is not None and not all(1 <= side <= ANY_MAX_SIDE for side in dims):
            raise InvalidRequest(
                f"Invalid size '{size}' for model '{model}': sides must be 1 to {ANY_MAX_SIDE} pixels.",
                param=param,
            )
        return size
    if rule == "custom":
        if dims is None:
            return size
        problem = custom_size_violation(*dims)
        if problem:
            raise InvalidRequest(
                f"Invalid size '{size}' for model '{model}': {problem}. Custom sizes need width and "
                f"height divisible by 16, at least 655,360 pixels, an aspect ratio of at most 3:1, "
                f"a long side of at most 3840 and at most 3840x2160 pixels; or use 'auto'.",
                param=param,
            )
        return size
    if size not in rule:
        raise InvalidRequest(
            f"Invalid size '{size}' for model '{model}'. Allowed sizes: {', '.join(rule)}.", param=param
        )
    return size


def nearest_size(size: str, rule: SizeRule) -> str:
    """The size ``rule`` allows that is nearest to ``size`` (``size`` itself when allowed).

    For models with ``size_policy = "nearest"``: clients such as Open WebUI send one fixed size
    (``512x512``) whatever the model. Nearest keeps the orientation (landscape, portrait or
    square) and comes closest in area, then in aspect ratio; under ``custom`` the asked shape is
    scaled into the rule's limits and its sides moved to the nearest valid multiples of 16.
    ``auto`` where a list lacks it becomes the list's first size; ``any`` changes nothing. A
    size that is not ``auto`` or ``WxH`` is still refused.

        nearest_size("512x512", ["1024x1024", "1536x1024", "1024x1536"])  # "1024x1024"
        nearest_size("512x512", "custom")                                   # "816x816"
    """
    dims = parse_size(size)
    if rule == "any":
        return size
    if rule == "custom":
        if dims is None or custom_size_violation(*dims) is None:
            return size
        width, height = _nearest_custom(*dims)
        return f"{width}x{height}"
    if size in rule:
        return size
    listed = [(entry, parsed) for entry in rule if (parsed := _dims_or_none(entry)) is not None]
    if not listed:
        return rule[0] if rule else size
    if dims is None:
        return listed[0][0]
    same = [item for item in listed if _orientation(*item[1]) == _orientation(*dims)] or listed
    return min(same, key=lambda item: _distance(item[1], dims))[0]


def _dims_or_none(size: str) -> tuple[int, int] | None:
    try:
        return parse_size(size)
    except InvalidRequest:
        return None


def _orientation(width: int, height: int) -> int:
    return (width > height) - (width < height)


def _distance(candidate: tuple[int, int], wanted: tuple[int, int]) -> tuple[int, float]:
    ratio = abs(math.log(candidate[0] / candidate[1]) - math.log(wanted[0] / wanted[1]))
    return abs(candidate[0] * candidate[1] - wanted[0] * wanted[1]), ratio


def _nearest_custom(width: int, height: int) -> tuple[int, int]:
    """The valid custom size nearest to ``width`` x ``height`` (which breaks the rule)."""
    wanted = (max(width, 1), max(height, 1))
    # The ideal shape: the asked ratio (at most 3:1) at the nearest allowed area, its long side
    # capped; then the multiples of 16 around it, of which the valid ones compete.
    ratio = min(max(wanted) / min(wanted), CUSTOM_MAX_RATIO)
    area = min(max(wanted[0] * wanted[1], CUSTOM_MIN_PIXELS), CUSTOM_MAX_PIXELS)
    short = math.sqrt(area / ratio)
    long = min(short * ratio, CUSTOM_MAX_SIDE)
    short = area / long
    ideal = (long, short) if wanted[0] >= wanted[1] else (short, long)
    orientation = _orientation(*wanted)
    candidates = []
    for long_side in _multiples_near(long):
        for short_side in _multiples_near(short):
            size = (long_side, short_side) if orientation >= 0 else (short_side, long_side)
            if _orientation(*size) == orientation and custom_size_violation(*size) is None:
                candidates.append(size)
    if not candidates:  # not expected; a full search keeps the answer right regardless
        sides = range(CUSTOM_MULTIPLE, CUSTOM_MAX_SIDE + 1, CUSTOM_MULTIPLE)
        candidates = [
            (w, h)
            for w in sides
            for h in sides
            if _orientation(w, h) == orientation and custom_size_violation(w, h) is None
        ]
    return min(candidates, key=lambda size: math.dist(size, ideal))


def _multiples_near(value: float) -> list[int]:
    base = int(value) // CUSTOM_MULTIPLE * CUSTOM_MULTIPLE
    steps = range(base - CUSTOM_MULTIPLE, base + 3 * CUSTOM_MULTIPLE, CUSTOM_MULTIPLE)
    return [side for side in steps if side > 0]
