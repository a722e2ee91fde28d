"""OpenAI ``size`` → Gemini's ``imageConfig``: the nearest aspect ratio and image size.

Gemini takes no pixel sizes, only an ``aspectRatio`` out of ten and (on the Pro / 3.x image
models) an ``imageSize`` tier. A client asking ``1536x1024`` gets ``3:2``; the pixels Gemini
then makes (1248x832 on gemini-2.5-flash-image) are what the response's ``size`` reports,
because the provider measures the returned image rather than echoing the request.

    >>> image_config("1536x1024", with_image_size=False)
    {'aspectRatio': '3:2'}
    >>> image_config("3840x2160", with_image_size=True)
    {'aspectRatio': '16:9', 'imageSize': '4K'}
"""

from __future__ import annotations

import math

from imagegate.media.sizes import parse_size

#: Every ratio Gemini's image models accept, as (width, height) parts.
ASPECT_RATIOS: tuple[tuple[int, int], ...] = (
    (1, 1),
    (2, 3),
    (3, 2),
    (3, 4),
    (4, 3),
    (4, 5),
    (5, 4),
    (9, 16),
    (16, 9),
    (21, 9),
)

#: The pixels Google documents per ratio. gemini-2.5-flash-image makes only 1K ("flash");
#: gemini-3-pro-image has its own 1K/2K/4K table. For docs, tests and the fake upstream.
PIXELS: dict[str, dict[str, tuple[int, int]]] = {
    "flash": {
        "1:1": (1024, 1024),
        "2:3": (832, 1248),
        "3:2": (1248, 832),
        "3:4": (864, 1184),
        "4:3": (1184, 864),
        "4:5": (896, 1152),
        "5:4": (1152, 896),
        "9:16": (768, 1344),
        "16:9": (1344, 768),
        "21:9": (1536, 672),
    },
    "1K": {
        "1:1": (1024, 1024),
        "2:3": (848, 1264),
        "3:2": (1264, 848),
        "3:4": (896, 1200),
        "4:3": (1200, 896),
        "4:5": (928, 1152),
        "5:4": (1152, 928),
        "9:16": (768, 1376),
        "16:9": (1376, 768),
        "21:9": (1584, 672),
    },
}
# 2K and 4K are the Pro 1K table scaled, exactly as Google's table lists them.
PIXELS["2K"] = {ratio: (w * 2, h * 2) for ratio, (w, h) in PIXELS["1K"].items()}
PIXELS["4K"] = {ratio: (w * 4, h * 4) for ratio, (w, h) in PIXELS["1K"].items()}

# The longest side each tier makes (21:9's), so every size a tier can serve maps to it.
_TIER_LIMITS: tuple[tuple[int, str], ...] = ((1600, "1K"), (3200, "2K"))


def nearest_aspect_ratio(width: int, height: int) -> str:
    """The supported ratio closest to ``width:height`` by log-ratio (so 2:1 and 1:2 are equally far).

    >>> nearest_aspect_ratio(1536, 1024)
    '3:2'
    """
    target = math.log(width / height)
    a, b = min(ASPECT_RATIOS, key=lambda ratio: abs(math.log(ratio[0] / ratio[1]) - target))
    return f"{a}:{b}"


def image_size_tier(width: int, height: int) -> str:
    """``1K``, ``2K`` or ``4K``: the smallest tier whose images are as long as the asked long side."""
    long_side = max(width, height)
    for limit, tier in _TIER_LIMITS:
        if long_side <= limit:
            return tier
    return "4K"


def image_config(size: str, *, with_image_size: bool) -> dict[str, str]:
    """The ``generationConfig.imageConfig`` for an OpenAI ``size``; empty for ``auto``.

    ``auto`` sends no hint: Gemini then picks (1:1 for a generation, the input's ratio for an
    edit), which is what "auto" means to a client.
    """
    dims = parse_size(size)
    if dims is None:
        return {}
    width, height = dims
    if width <= 0 or height <= 0:
        return {}
    config = {"aspectRatio": nearest_aspect_ratio(width, height)}
    if with_image_size:
        config["imageSize"] = image_size_tier(width, height)
    return config


def supports_image_size(upstream_model: str) -> bool:
    """Whether a model takes ``imageSize``: the Pro and 3.x image models do; 2.5 Flash makes 1K only."""
    name = upstream_model.lower()
    return "pro" in name or name.startswith(("gemini-3", "models/gemini-3"))
