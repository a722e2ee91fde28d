import io

import pytest
from PIL import Image

from imagegate.domain import sniff_format
from imagegate.media.transcode import convert_image, encode_image, image_dimensions

CLEAR_RED = (255, 0, 0, 0)


def encode(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def half_transparent_png() -> bytes:
    """Left half opaque blue, right half fully transparent red."""
    image = Image.new("RGBA", (64, 32), CLEAR_RED)
    image.paste((0, 0, 255, 255), (0, 0, 32, 32))
    return encode(image, "PNG")


def photo(size: tuple[int, int] = (256, 256)) -> Image.Image:
    # Noise, so quality settings visibly change the encoded size.
    return Image.merge("RGB", [Image.effect_noise(size, 40 + 10 * i) for i in range(3)])


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_png_to_jpeg_flattens_alpha_onto_white() -> None:
    out = decode(convert_image(half_transparent_png(), "jpeg"))

    assert (out.format, out.mode, out.size) == ("JPEG", "RGB", (64, 32))
    r, g, b = out.getpixel((48, 16))  # type: ignore[misc]
    assert min(r, g, b) > 245  # white, not the hidden red
    r, g, b = out.getpixel((16, 16))  # type: ignore[misc]
    assert b > 200 and r < 40


def test_png_to_webp_keeps_alpha_when_transparent() -> None:
    out = decode(convert_image(half_transparent_png(), "webp", background="transparent"))

    assert (out.format, out.mode) == ("WEBP", "RGBA")
    assert out.getpixel((48, 16))[3] == 0  # type: ignore[index]
    assert out.getpixel((16, 16))[3] == 255  # type: ignore[index]


def test_opaque_background_flattens_png_too() -> None:
    out = decode(convert_image(half_transparent_png(), "png", background="opaque"))

    assert (out.format, out.mode) == ("PNG", "RGB")
    assert out.getpixel((48, 16)) == (255, 255, 255)


def test_compression_changes_jpeg_size() -> None:
    source = encode(photo(), "PNG")

    small = convert_image(source, "jpeg", compression=10)
    default = convert_image(source, "jpeg")
    best = convert_image(source, "jpeg", compression=100)

    assert len(small) < len(default) < len(best)


def test_compression_changes_webp_size() -> None:
    source = encode(photo(), "PNG")

    assert len(convert_image(source, "webp", compression=10)) < len(
        convert_image(source, "webp", compression=90)
    )


def test_png_ignores_compression() -> None:
    source = encode(photo(), "JPEG")

    assert convert_image(source, "png", compression=0) == convert_image(source, "png", compression=100)


@pytest.mark.parametrize("target", ["png", "jpeg", "webp"])
@pytest.mark.parametrize("source", ["PNG", "JPEG", "WEBP"])
def test_every_conversion_yields_the_target_format(source: str, target: str) -> None:
    out = convert_image(encode(photo((40, 24)), source), target)  # type: ignore[arg-type]

    assert sniff_format(out) == target
    assert decode(out).size == (40, 24)


def test_same_format_without_changes_is_returned_untouched() -> None:
    source = half_transparent_png()

    assert convert_image(source, "png") is source


def test_encode_image_from_a_pillow_image() -> None:
    out = decode(encode_image(Image.new("RGBA", (10, 10), (0, 255, 0, 100)), "webp", compression=80))

    assert (out.format, out.mode, out.size) == ("WEBP", "RGBA", (10, 10))


def test_convert_refuses_non_images() -> None:
    with pytest.raises(ValueError):
        convert_image(b"not an image", "png")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_image_dimensions(fmt: str) -> None:
    assert image_dimensions(encode(photo((123, 45)), fmt)) == (123, 45)


def test_image_dimensions_reads_only_the_header() -> None:
    data = encode(photo((300, 200)), "PNG")

    # Half the file is missing: a pixel decode would fail, the header is intact.
    assert image_dimensions(data[: len(data) // 2]) == (300, 200)


def test_image_dimensions_refuses_non_images() -> None:
    with pytest.raises(ValueError):
        image_dimensions(b"nope")
