"""Image sizes: parsing ``WxH`` and checking a size against a model's allowed set (SPEC §3)."""

from __future__ import annotations

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
