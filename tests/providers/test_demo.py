"""The demo provider draws real images: checked here with Pillow, as a client would see them."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, cast

import pytest
from PIL import Image, ImageChops

from imagegate.domain import (
    ImageFormat,
    ImageRequest,
    ImageResult,
    InputImage,
    PartialImage,
    ProviderEvent,
)
from imagegate.errors import InvalidRequest
from imagegate.providers.demo import DemoProvider, edit_auto_size, input_image_tokens
from imagegate.settings import ChannelConfig

if TYPE_CHECKING:
    # Only a type here: the demo provider never uses the HTTP pool.
    from imagegate.http import HttpClients

PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


@pytest.fixture
def provider() -> DemoProvider:
    # The demo provider never touches the HTTP pool, so none is built.
    return DemoProvider(ChannelConfig(name="demo", provider="demo"), cast("HttpClients", None))


async def collect(provider: DemoProvider, request: ImageRequest) -> list[ProviderEvent]:
    return [event async for event in provider.run(request, "demo")]


async def result_of(provider: DemoProvider, request: ImageRequest) -> ImageResult:
    events = await collect(provider, request)
    assert len(events) == 1
    result = events[0]
    assert isinstance(result, ImageResult)
    return result


def decode(raw: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(raw))
    image.load()
    return image


def images_of(result: ImageResult) -> list[Image.Image]:
    return [decode(item.blob.raw()) for item in result.images if item.blob is not None]


def png_input(image: Image.Image) -> InputImage:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return InputImage(
        data=buffer.getvalue(),
        format="png",
        width=image.width,
        height=image.height,
        has_alpha="A" in image.getbands(),
    )


def generation(**fields: object) -> ImageRequest:
    values: dict[str, object] = {"prompt": "a lighthouse at dusk", **fields}
    return ImageRequest(operation="generate", model="demo", **values)  # type: ignore[arg-type]


@pytest.mark.parametrize("output_format", ["png", "jpeg", "webp"])
async def test_default_size_and_each_format(provider: DemoProvider, output_format: ImageFormat) -> None:
    result = await result_of(provider, generation(output_format=output_format))

    [image] = images_of(result)
    assert image.format == PIL_FORMATS[output_format]
    assert image.size == (1024, 1024)
    assert image.mode == "RGB"
    assert (result.size, result.output_format, result.background) == ("1024x1024", output_format, "opaque")
    assert result.images[0].revised_prompt == "a lighthouse at dusk"
    assert result.created is not None


async def test_custom_size(provider: DemoProvider) -> None:
    result = await result_of(provider, generation(size="1536x864", quality="high"))

    assert images_of(result)[0].size == (1536, 864)
    assert result.size == "1536x864"
    assert result.quality == "high"


@pytest.mark.parametrize("output_format", ["png", "webp"])
async def test_transparent_background(provider: DemoProvider, output_format: ImageFormat) -> None:
    result = await result_of(provider, generation(background="transparent", output_format=output_format))

    [image] = images_of(result)
    assert image.mode == "RGBA"
    width, height = image.size
    for corner in [(0, 0), (width - 1, 0), (0, height - 1), (width - 1, height - 1)]:
        assert image.getpixel(corner)[3] == 0  # type: ignore[index]
    # Something is drawn, too: the middle is not empty.
    assert image.getchannel("A").getextrema()[1] == 255
    assert result.background == "transparent"


async def test_transparent_jpeg_is_flattened(provider: DemoProvider) -> None:
    result = await result_of(provider, generation(background="transparent", output_format="jpeg"))

    assert images_of(result)[0].mode == "RGB"
    assert result.background == "opaque"


async def test_n_images_differ(provider: DemoProvider) -> None:
    result = await result_of(provider, generation(n=3, size="512x512"))

    raws = [item.blob.raw() for item in result.images if item.blob is not None]
    assert len(raws) == 3
    assert len(set(raws)) == 3
    first, second, _ = images_of(result)
    assert ImageChops.difference(first, second).getbbox() is not None


async def test_deterministic(provider: DemoProvider) -> None:
    request = generation(n=2, size="512x512", output_format="webp")
    first = await result_of(provider, request)
    again = await result_of(provider, request)
    other = await result_of(provider, generation(n=1, size="512x512", output_format="webp", prompt="x"))

    assert [i.blob.raw() for i in first.images if i.blob] == [i.blob.raw() for i in again.images if i.blob]
    assert first.images[0].blob and other.images[0].blob
    assert first.images[0].blob.raw() != other.images[0].blob.raw()


@pytest.mark.parametrize("partial_images", [1, 3])
async def test_stream_partials_then_result(provider: DemoProvider, partial_images: int) -> None:
    request = generation(stream=True, partial_images=partial_images, size="1024x1536", output_format="jpeg")
    events = await collect(provider, request)

    partials, final = events[:-1], events[-1]
    assert isinstance(final, ImageResult)
    assert [p.index for p in partials if isinstance(p, PartialImage)] == list(range(partial_images))
    final_image = images_of(final)[0].convert("RGB")
    distances = []
    for partial in partials:
        assert isinstance(partial, PartialImage)
        assert partial.size == "1024x1536"
        image = decode(partial.image.raw())
        assert (image.format, image.size) == ("JPEG", (1024, 1536))
        histogram = ImageChops.difference(image.convert("RGB"), final_image).convert("L").histogram()
        distances.append(sum(value * count for value, count in enumerate(histogram)))
    # Each preview is closer to the final image than the one before it.
    assert distances == sorted(distances, reverse=True)
    assert len(set(distances)) == len(distances)


async def test_no_partials_without_stream(provider: DemoProvider) -> None:
    events = await collect(provider, generation(partial_images=2))
    assert len(events) == 1


async def test_usage_estimate(provider: DemoProvider) -> None:
    result = await result_of(provider, generation(n=2, quality="low", size="1024x1024"))

    assert result.usage is not None
    assert result.usage.text_tokens == 5  # ceil(20 characters / 4)
    assert result.usage.image_tokens == 0
    assert result.usage.input_tokens == 5
    assert result.usage.output_tokens == 2 * 272
    assert result.quality == "low"


def edit_request(images: list[InputImage], **fields: object) -> ImageRequest:
    return ImageRequest(operation="edit", model="demo", prompt="make it sunny", images=images, **fields)  # type: ignore[arg-type]


async def test_edit_derives_from_input(provider: DemoProvider) -> None:
    red = png_input(Image.new("RGB", (640, 480), (255, 0, 0)))
    result = await result_of(provider, edit_request([red], size="1024x1024"))

    [image] = images_of(result)
    assert image.size == (1024, 1024)
    r, g, b = image.convert("RGB").getpixel((5, 5))  # type: ignore[misc]
    assert r > 150 and r > g + 60 and r > b + 60
    assert result.usage is not None
    assert result.usage.image_tokens == input_image_tokens(640, 480) > 0
    assert result.usage.input_tokens == result.usage.text_tokens + result.usage.image_tokens


async def test_edit_auto_size_follows_the_source(provider: DemoProvider) -> None:
    source = png_input(Image.new("RGB", (1010, 750), (0, 90, 200)))
    result = await result_of(provider, edit_request([source], output_format="webp"))

    [image] = images_of(result)
    assert image.size == (1008, 752)
    assert (image.format, result.size) == ("WEBP", "1008x752")
    assert edit_auto_size(300, 200) == (512, 336)
    assert edit_auto_size(8000, 4000) == (3840, 1920)


async def test_edit_with_mask_changes_only_the_clear_area(provider: DemoProvider) -> None:
    source_image = Image.linear_gradient("L").resize((512, 512)).convert("RGB")
    mask_image = Image.new("RGBA", (512, 512), (0, 0, 0, 255))
    mask_image.paste((0, 0, 0, 0), (0, 0, 256, 512))  # the left half may change
    request = edit_request([png_input(source_image)], mask=png_input(mask_image))
    result = await result_of(provider, request)

    [image] = images_of(result)
    image = image.convert("RGB")
    kept = (300, 0, 512, 512)
    assert ImageChops.difference(image.crop(kept), source_image.crop(kept)).getbbox() is None
    changed = (0, 0, 240, 512)
    assert ImageChops.difference(image.crop(changed), source_image.crop(changed)).getbbox() is not None


async def test_edit_shows_extra_inputs_as_thumbnails(provider: DemoProvider) -> None:
    base = png_input(Image.new("RGB", (512, 512), (255, 255, 255)))
    green = png_input(Image.new("RGB", (200, 200), (0, 255, 0)))
    alone = images_of(await result_of(provider, edit_request([base])))[0].convert("RGB")
    with_thumb = images_of(await result_of(provider, edit_request([base, green])))[0].convert("RGB")

    colours = with_thumb.getcolors(maxcolors=1 << 20) or []
    assert any(g > 200 and r < 60 and b < 60 for _, (r, g, b) in colours)
    assert ImageChops.difference(alone, with_thumb).getbbox() is not None


async def test_edit_without_image_is_refused(provider: DemoProvider) -> None:
    with pytest.raises(InvalidRequest):
        await collect(provider, edit_request([]))
