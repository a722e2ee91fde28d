import io
import struct
import zlib

import pytest
from PIL import Image

from imagegate.domain import InputImage
from imagegate.errors import InvalidRequest, PayloadTooLarge
from imagegate.media.images import load_input_image, validate_mask

MB = 1024 * 1024


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def load(data: bytes, *, max_bytes: int = 50 * MB, max_pixels: int = 50_000_000) -> InputImage:
    return load_input_image(data, param="image", max_bytes=max_bytes, max_pixels=max_pixels)


def png_claiming(width: int, height: int) -> bytes:
    """A real 1x1 PNG whose IHDR (with a valid CRC) claims other dimensions."""
    data = bytearray(encode(Image.new("1", (1, 1)), "PNG"))
    ihdr = 8  # after the signature: length(4) b"IHDR"(4) fields(13) crc(4)
    data[ihdr + 8 : ihdr + 16] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr + 4 : ihdr + 21]))
    data[ihdr + 21 : ihdr + 25] = struct.pack(">I", crc)
    return bytes(data)


@pytest.mark.parametrize(
    ("fmt", "mode", "has_alpha"),
    [("PNG", "RGBA", True), ("PNG", "RGB", False), ("JPEG", "RGB", False), ("WEBP", "RGBA", True)],
)
def test_accepts_png_jpeg_webp(fmt: str, mode: str, has_alpha: bool) -> None:
    # Half-transparent: libwebp drops an alpha channel that is fully opaque.
    image = load(encode(Image.new(mode, (40, 30), (255, 0, 0, 128)[: len(mode)]), fmt))

    assert (image.format, image.width, image.height) == (fmt.lower(), 40, 30)
    assert image.has_alpha is has_alpha


def test_palette_png_with_transparency_has_alpha() -> None:
    data = encode(Image.new("P", (8, 8), 0), "PNG", transparency=0)

    assert load(data).has_alpha is True


def test_format_comes_from_bytes_not_names() -> None:
    data = encode(Image.new("RGB", (4, 4)), "JPEG")

    assert load(data).format == "jpeg"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello, not an image",
        encode(Image.new("RGB", (4, 4)), "GIF"),
        encode(Image.new("RGB", (4, 4)), "BMP"),
    ],
    ids=["empty", "text", "gif", "bmp"],
)
def test_refuses_non_images_and_unsupported_formats(data: bytes) -> None:
    with pytest.raises(InvalidRequest) as info:
        load(data)

    assert (info.value.code, info.value.param) == ("invalid_image", "image")
    assert "PNG, JPEG or WebP" in info.value.message


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_refuses_truncated_images(fmt: str) -> None:
    data = encode(Image.effect_noise((256, 256), 64).convert("RGB"), fmt)

    with pytest.raises(InvalidRequest) as info:
        load(data[: len(data) // 2])

    assert info.value.code == "invalid_image"


def test_refuses_more_bytes_than_the_limit() -> None:
    data = encode(Image.effect_noise((64, 64), 64), "PNG")
    assert len(data) > 1000

    with pytest.raises(PayloadTooLarge) as info:
        load(data, max_bytes=1000)

    assert info.value.status == 413
    assert info.value.param == "image"
    assert "MB" in info.value.message


def test_refuses_more_pixels_than_the_limit() -> None:
    data = encode(Image.new("RGB", (100, 100)), "PNG")

    with pytest.raises(InvalidRequest) as info:
        load(data, max_pixels=9_999)

    assert info.value.code == "image_too_large"
    assert "100x100" in info.value.message


@pytest.mark.parametrize(("width", "height"), [(20_000, 20_000), (9_000, 9_000)])
def test_pixel_bomb_is_refused_from_the_header(width: int, height: int) -> None:
    # 400M pixels trips Pillow's own bomb check; 81M only ours. Neither gets decoded.
    bomb = png_claiming(width, height)
    assert len(bomb) < 100

    with pytest.raises(InvalidRequest) as info:
        load(bomb)

    assert info.value.code == "image_too_large"


def test_load_keeps_the_bytes() -> None:
    data = encode(Image.new("RGB", (4, 4)), "PNG")

    assert load(data).data is data


def _input(fmt: str, mode: str, size: tuple[int, int]) -> InputImage:
    return load(encode(Image.new(mode, size), fmt.upper()))


def test_valid_mask_passes() -> None:
    validate_mask(_input("png", "RGBA", (64, 32)), _input("jpeg", "RGB", (64, 32)))


@pytest.mark.parametrize(
    ("mask", "words"),
    [
        (("webp", "RGBA", (64, 32)), "PNG"),
        (("png", "RGB", (64, 32)), "alpha"),
        (("png", "RGBA", (32, 64)), "dimensions"),
    ],
    ids=["not-png", "no-alpha", "wrong-size"],
)
def test_mask_rules(mask: tuple[str, str, tuple[int, int]], words: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        validate_mask(_input(*mask), _input("png", "RGB", (64, 32)))

    assert info.value.param == "mask"
    assert words in info.value.message
