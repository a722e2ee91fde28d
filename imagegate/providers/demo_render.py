"""Pure, synchronous Pillow drawing for the demo provider.

Everything here is CPU-bound and blocking, so the provider calls it through
``asyncio.to_thread``. Every picture is a function of its arguments only (no clock, no
global random state), which keeps the demo deterministic: the same request, the same bytes.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import random
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources

from PIL import Image, ImageChops, ImageDraw, ImageFont, ImageOps

from imagegate.domain import ImageFormat

RGB = tuple[int, int, int]
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

_WHITE: RGB = (255, 255, 255)
# How much of the prompt colour an edit lays over the source: enough to see, not to hide it.
_TINT_STRENGTH = 0.35


def _seed(prompt: str, index: int) -> bytes:
    return hashlib.sha256(f"{prompt}\x00{index}".encode()).digest()


def _hsv(hue: float, saturation: float, value: float) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return round(r * 255), round(g * 255), round(b * 255)


def palette(prompt: str, index: int) -> list[RGB]:
    """Five harmonious colours from the prompt's hash: two for the gradient, three accents."""
    digest = _seed(prompt, index)
    hue = digest[0] / 255
    # Neighbouring hues for the background and a complementary accent read as "designed"
    # rather than as random noise.
    spread = 0.06 + digest[1] / 255 * 0.2
    return [
        _hsv(hue, 0.45, 0.96),
        _hsv(hue + spread, 0.65, 0.72),
        _hsv(hue + 0.5, 0.55, 0.98),
        _hsv(hue + 0.5 + spread, 0.7, 0.85),
        _hsv(hue - spread, 0.35, 1.0),
    ]


def _gradient(size: tuple[int, int], start: RGB, end: RGB, angle_byte: int) -> Image.Image:
    # A tiny gradient stretched with bilinear filtering looks the same as a full-size one
    # at a fraction of the per-pixel Python work.
    steps = 64
    direction = [(1, 0), (1, 1), (0, 1), (-1, 1)][angle_byte % 4]
    norm = (abs(direction[0]) + abs(direction[1])) * (steps - 1)
    values = []
    for y in range(steps):
        for x in range(steps):
            along = x * direction[0] + y * direction[1] + (steps - 1 if direction[0] < 0 else 0)
            values.append(round(255 * along / norm))
    ramp = Image.new("L", (steps, steps))
    ramp.putdata(values)
    ramp = ramp.resize(size, Image.Resampling.BILINEAR)
    return Image.composite(Image.new("RGBA", size, (*end, 255)), Image.new("RGBA", size, (*start, 255)), ramp)


def _circles(canvas: Image.Image, colours: Sequence[RGB], rng: random.Random) -> None:
    width, height = canvas.size
    short = min(width, height)
    layer = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for _ in range(rng.randint(4, 7)):
        # Centres stay in the middle 60% and radii under 18% of the short side, so the
        # corners never get paint: a transparent background stays transparent there.
        cx = rng.uniform(0.2, 0.8) * width
        cy = rng.uniform(0.2, 0.8) * height
        radius = rng.uniform(0.06, 0.18) * short
        colour = rng.choice(colours)
        box = (cx - radius, cy - radius, cx + radius, cy + radius)
        if rng.random() < 0.3:
            draw.ellipse(box, outline=(*colour, 230), width=max(2, round(radius / 6)))
        else:
            draw.ellipse(box, fill=(*colour, rng.randint(150, 215)))
    canvas.alpha_composite(layer)


def _wrap(text: str, font: Font, width: float, max_lines: int) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split():
        if len(lines) > max_lines:
            break  # a 32,000-character prompt must not cost more than what is drawn
        candidate = f"{current} {word}" if current else word
        if font.getlength(candidate) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        current = word
        # A word wider than a whole line (a URL, a long compound) is cut where it must be.
        while len(current) > 1 and font.getlength(current) > width and len(lines) <= max_lines:
            cut = _longest_fitting_prefix(current, font, width)
            lines.append(current[:cut])
            current = current[cut:]
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        last = lines[-1]
        while last and font.getlength(last + "...") > width:
            last = last[:-1]
        lines[-1] = last.rstrip() + "..."
    return lines


def _longest_fitting_prefix(word: str, font: Font, width: float) -> int:
    """Length of the longest prefix of ``word`` that fits ``width`` (at least 1), by bisection."""
    low, high = 1, len(word)
    while low < high:
        middle = (low + high + 1) // 2
        if font.getlength(word[:middle]) <= width:
            low = middle
        else:
            high = middle - 1
    return low


# WenQuanYi Micro Hei (from the `paperang-p2-fonts-cjk` wheel): Latin and CJK in one file, so a
# Chinese prompt is drawn as text, not as empty boxes. Pillow's built-in font has no CJK glyphs.
_CJK_FONT_PACKAGE = "paperang_p2_fonts_cjk"
_CJK_FONT_FILE = "fonts/wqy-microhei.ttc"


@lru_cache(maxsize=32)
def caption_font(size: int) -> Font:
    """The caption font at ``size`` px: the CJK font when installed, else Pillow's default."""
    try:
        path = resources.files(_CJK_FONT_PACKAGE).joinpath(_CJK_FONT_FILE)
        with resources.as_file(path) as file:
            return ImageFont.truetype(str(file), size=size, index=0)
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        return ImageFont.load_default(size=size)


def _caption(canvas: Image.Image, text: str, top: int, bottom: int) -> None:
    """The prompt, word-wrapped on a translucent panel centred between ``top`` and ``bottom``."""
    width, _ = canvas.size
    font_size = max(12, round(min(width, bottom - top) / 16))
    font = caption_font(font_size)
    line_height = round(font_size * 1.3)
    padding = font_size // 2
    max_lines = max(1, int((bottom - top) * 0.7) // line_height)
    lines = _wrap(" ".join(text.split()), font, width * 0.8 - 2 * padding, max_lines)
    if not lines:
        return
    block_width = max(font.getlength(line) for line in lines)
    block_height = line_height * len(lines)
    left = (width - block_width) / 2
    y = top + (bottom - top - block_height) / 2
    layer = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    panel = (left - padding, y - padding, left + block_width + padding, y + block_height + padding)
    draw.rounded_rectangle(panel, radius=padding, fill=(20, 20, 28, 120))
    for line in lines:
        x = (width - font.getlength(line)) / 2
        draw.text(
            (x, y),
            line,
            font=font,
            fill=(*_WHITE, 255),
            stroke_width=max(1, font_size // 24),
            stroke_fill=(0, 0, 0, 160),
        )
        y += line_height
    canvas.alpha_composite(layer)


def render_generation(prompt: str, index: int, size: tuple[int, int], transparent: bool) -> Image.Image:
    """A gradient, a few circles and the prompt; RGBA on transparency or opaque RGB."""
    colours = palette(prompt, index)
    digest = _seed(prompt, index)
    if transparent:
        canvas = Image.new("RGBA", size, (0, 0, 0, 0))
    else:
        canvas = _gradient(size, colours[0], colours[1], digest[2])
    _circles(canvas, colours[2:], random.Random(digest))
    _caption(canvas, prompt, 0, size[1])
    return canvas if transparent else canvas.convert("RGB")


def _open(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _thumbnails(canvas: Image.Image, images: Sequence[bytes]) -> int:
    """Paste extra inputs as a strip along the bottom; returns the strip's top edge."""
    width, height = canvas.size
    side = min(width, height) // 5
    margin = max(2, side // 10)
    if not images or side < 8:
        return height
    x = margin
    for data in images:
        if x + side > width - margin:
            break
        thumb = ImageOps.fit(_open(data).convert("RGBA"), (side - 4, side - 4), Image.Resampling.LANCZOS)
        framed = Image.new("RGBA", (side, side), (*_WHITE, 255))
        framed.alpha_composite(thumb, (2, 2))
        canvas.alpha_composite(framed, (x, height - side - margin))
        x += side + margin
    return height - side - 2 * margin


def render_edit(
    prompt: str,
    index: int,
    size: tuple[int, int],
    images: Sequence[bytes],
    mask: bytes | None,
    transparent: bool,
) -> Image.Image:
    """The first image cover-cropped to ``size``, tinted and captioned; only the mask's clear area changes."""
    original = ImageOps.fit(_open(images[0]).convert("RGBA"), size, Image.Resampling.LANCZOS)
    tint = Image.new("RGB", size, palette(prompt, index)[1])
    edited = Image.blend(original.convert("RGB"), tint, _TINT_STRENGTH).convert("RGBA")
    edited.putalpha(original.getchannel("A"))
    strip_top = _thumbnails(edited, images[1:])
    _caption(edited, prompt, 0, strip_top)
    if mask is not None:
        # The mask is cropped exactly like the image so the two stay aligned; where it is
        # opaque the source shows through untouched, as OpenAI's edit endpoint promises.
        keep = ImageOps.fit(_open(mask).convert("RGBA").getchannel("A"), size, Image.Resampling.LANCZOS)
        edited = Image.composite(original, edited, keep)
    if not transparent:
        return flatten(edited)
    # A transparent background was asked for: an opaque photo has none to keep, so the demo
    # cuts the picture out as a rounded card with clear corners and margins.
    edited.putalpha(ImageChops.multiply(edited.getchannel("A"), _card_alpha(size)))
    return edited


def _card_alpha(size: tuple[int, int]) -> Image.Image:
    """An alpha mask: opaque inside a rounded rectangle inset 6% from each edge, clear outside."""
    width, height = size
    inset = max(1, round(min(width, height) * 0.06))
    alpha = Image.new("L", size, 0)
    ImageDraw.Draw(alpha).rounded_rectangle(
        (inset, inset, width - 1 - inset, height - 1 - inset), radius=inset * 2, fill=255
    )
    return alpha


def flatten(image: Image.Image) -> Image.Image:
    """Opaque RGB, with any transparency laid over white."""
    if image.mode == "RGB":
        return image
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (*_WHITE, 255))
    background.alpha_composite(rgba)
    return background.convert("RGB")


def preview(image: Image.Image, step: int, steps: int) -> Image.Image:
    """A blocky version of ``image``: step 0 is the coarsest, each later step twice as fine."""
    width, height = image.size
    factor = 2 ** (3 + steps - 1 - step)
    small = image.resize((max(1, width // factor), max(1, height // factor)), Image.Resampling.BOX)
    return small.resize(image.size, Image.Resampling.NEAREST)


def encode(image: Image.Image, output_format: ImageFormat, quality: int) -> bytes:
    buffer = io.BytesIO()
    if output_format == "png":
        # Speed over size: this is a demo, and level 1 is several times faster than 6.
        image.save(buffer, "PNG", compress_level=1)
    elif output_format == "jpeg":
        flatten(image).save(buffer, "JPEG", quality=min(100, max(1, quality)))
    else:
        image.save(buffer, "WEBP", quality=min(100, max(0, quality)))
    return buffer.getvalue()
