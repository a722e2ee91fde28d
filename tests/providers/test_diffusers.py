"""The diffusers provider on a tiny, randomly initialised Stable Diffusion pipeline (CPU, no files).

The pipeline is built in code (real diffusers/transformers classes, seeded weights), so these
tests need torch and diffusers installed (``imagegate[local]``) but no weights and no network.
Only the missing-dependency test runs without them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

from imagegate.domain import ImageRequest, ImageResult, InputImage, PartialImage, ProviderEvent
from imagegate.errors import InvalidRequest, UpstreamFailed, UpstreamTimeout
from imagegate.providers import diffusers as diffusers_module
from imagegate.providers.diffusers import DiffusersProvider
from imagegate.providers.local.loader import (
    MissingLocalDependencies,
    register_pipeline,
    unregister_pipeline,
)
from imagegate.providers.pool import ProviderPool
from imagegate.settings import ChannelConfig, Settings
from tests.conftest import GatewayFactory, image_bytes, open_image

if TYPE_CHECKING:
    from imagegate.http import HttpClients

pytestmark = [
    # numpy 2.4 warns about torch's __array__ inside diffusers' schedulers; not ours to fix.
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword"),
]

TINY = "tiny-sd"
SIZE = "32x32"

ProviderFactory = Callable[..., DiffusersProvider]


def build_tiny_pipeline(workdir: Path) -> Any:
    """A Stable Diffusion pipeline with a few thousand random weights: 32x32 images, fast on CPU."""
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    transformers = pytest.importorskip("transformers")
    # CLIP's tokenizer reads a vocabulary: one token per character is enough here.
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in "abcdefghijklmnopqrstuvwxyz0123456789 .,!?'-":
        vocab.setdefault(char, len(vocab))
        vocab.setdefault(char + "</w>", len(vocab))
    (workdir / "vocab.json").write_text(json.dumps(vocab))
    (workdir / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = transformers.CLIPTokenizer.from_pretrained(str(workdir), model_max_length=16)
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16,
        norm_num_groups=4,
        attention_head_dim=2,
    )
    vae = diffusers.AutoencoderKL(
        block_out_channels=[8, 16],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=32,
    )
    text_config = transformers.CLIPTextConfig(
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
        hidden_size=16,
        intermediate_size=32,
        num_attention_heads=2,
        num_hidden_layers=2,
        vocab_size=len(vocab),
        max_position_embeddings=16,
    )
    text_encoder = transformers.CLIPTextModel(text_config).eval()
    # SD-Turbo's sampler: ancestral Euler draws fresh noise every step, so seeds matter throughout.
    scheduler = diffusers.EulerAncestralDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        timestep_spacing="trailing",
        steps_offset=1,
    )
    return diffusers.StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The tiny pipeline, also registered as :data:`TINY` for channels to use."""
    pipe = build_tiny_pipeline(tmp_path_factory.mktemp("tokenizer"))
    register_pipeline(TINY, pipe)
    yield pipe
    unregister_pipeline(TINY)


@pytest.fixture
async def make_provider(tiny_pipeline: Any) -> AsyncIterator[ProviderFactory]:
    providers: list[DiffusersProvider] = []

    def make(timeout_s: float = 120.0, **options: Any) -> DiffusersProvider:
        channel = ChannelConfig(
            name="local",
            provider="diffusers",
            models=["tiny"],
            timeout_s=timeout_s,
            options={"pipeline": TINY, "steps": 2, "batch_window_ms": 0, **options},
        )
        # The provider never uses the HTTP pool.
        provider = DiffusersProvider(channel, cast("HttpClients", None))
        providers.append(provider)
        return provider

    yield make
    for provider in providers:
        await provider.aclose()


def request(prompt: str = "a red cat", seed: int | None = 1, **fields: Any) -> ImageRequest:
    extra = {} if seed is None else {"seed": seed}
    fields.setdefault("size", SIZE)
    return ImageRequest(operation="generate", model="tiny", prompt=prompt, extra=extra, **fields)


async def collect(provider: DiffusersProvider, req: ImageRequest) -> list[ProviderEvent]:
    return [event async for event in provider.run(req, "tiny")]


async def result_of(provider: DiffusersProvider, req: ImageRequest) -> ImageResult:
    events = await collect(provider, req)
    assert isinstance(events[-1], ImageResult)
    return events[-1]


def pngs(result: ImageResult) -> list[bytes]:
    return [image.blob.raw() for image in result.images if image.blob is not None]


async def wait_for(condition: Callable[[], bool]) -> None:
    # The state is the worker thread's, which has no asyncio event to await.
    async with asyncio.timeout(60):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


# -- seeds and batching -----------------------------------------------------------------------


async def test_concurrent_batched_requests_equal_sequential_ones(make_provider: ProviderFactory) -> None:
    batched = make_provider(max_batch=2, batch_window_ms=60_000)
    together = await asyncio.gather(
        result_of(batched, request("a red cat", seed=11)), result_of(batched, request("a blue dog", seed=22))
    )
    # The long window closed early because the batch was full: one call made both.
    assert [(record.requests, record.images) for record in batched.engine.history] == [(2, 2)]

    alone = make_provider(max_batch=1)
    first = await result_of(alone, request("a red cat", seed=11))
    second = await result_of(alone, request("a blue dog", seed=22))
    assert [record.requests for record in alone.engine.history] == [1, 1]
    assert pngs(together[0]) == pngs(first)
    assert pngs(together[1]) == pngs(second)
    assert [together[0].images[0].seed, together[1].images[0].seed] == [11, 22]


async def test_different_seeds_give_different_images(make_provider: ProviderFactory) -> None:
    provider = make_provider()
    one = await result_of(provider, request(seed=5))
    two = await result_of(provider, request(seed=6))
    assert pngs(one) != pngs(two)
    assert open_image(pngs(one)[0]).size == (32, 32)


async def test_n_is_one_batch_with_consecutive_seeds(make_provider: ProviderFactory) -> None:
    provider = make_provider()
    result = await result_of(provider, request(seed=40, n=2))
    assert [image.seed for image in result.images] == [40, 41]
    assert [(record.requests, record.images) for record in provider.engine.history] == [(1, 2)]
    images = pngs(result)
    assert images[0] != images[1]
    assert [open_image(raw).size for raw in images] == [(32, 32), (32, 32)]
    # Image i is exactly what seed + i gives on its own.
    assert pngs(await result_of(provider, request(seed=41))) == images[1:]
    assert (result.size, result.output_format, result.usage) == ("32x32", "png", None)


async def test_a_random_seed_is_reported_and_reproduces_the_image(make_provider: ProviderFactory) -> None:
    provider = make_provider()
    first = await result_of(provider, request(seed=None))
    seed = first.images[0].seed
    assert isinstance(seed, int)
    assert pngs(await result_of(provider, request(seed=seed))) == pngs(first)


@pytest.mark.parametrize("seed", ["7", -1, 2**63, True, 1.5])
async def test_invalid_seed_is_a_400(make_provider: ProviderFactory, seed: object) -> None:
    provider = make_provider()
    bad = ImageRequest(operation="generate", model="tiny", prompt="x", extra={"seed": seed})
    with pytest.raises(InvalidRequest) as caught:
        await collect(provider, bad)
    assert caught.value.param == "seed"


async def test_sizes_round_to_the_latent_grid_and_auto_is_native(make_provider: ProviderFactory) -> None:
    provider = make_provider()
    odd = await result_of(provider, request(size="30x43"))
    assert odd.size == "32x40"
    assert open_image(pngs(odd)[0]).size == (32, 40)
    auto = await result_of(provider, request(size="auto"))
    assert auto.size == "32x32"  # sample_size 16 x VAE factor 2


async def test_different_shapes_are_not_batched_together(make_provider: ProviderFactory) -> None:
    provider = make_provider(max_batch=4, batch_window_ms=500)
    await asyncio.gather(
        result_of(provider, request(size="32x32")), result_of(provider, request(size="32x16"))
    )
    assert sorted(record.requests for record in provider.engine.history) == [1, 1]


# -- streaming, cancellation, the event loop --------------------------------------------------


async def test_stream_yields_partial_images_then_the_result(make_provider: ProviderFactory) -> None:
    provider = make_provider(steps=4)
    events = await collect(provider, request(stream=True, partial_images=2))
    partials = [event for event in events if isinstance(event, PartialImage)]
    assert [partial.index for partial in partials] == [0, 1]
    assert isinstance(events[-1], ImageResult)
    assert len(events) == 3
    for partial in partials:
        assert partial.size == "32x32"
        assert open_image(partial.image.raw()).size == (32, 32)
    final = pngs(events[-1])[0]
    assert open_image(final).size == (32, 32)
    assert final not in [partial.image.raw() for partial in partials]
    # Streaming changes nothing about the image itself.
    assert pngs(await result_of(provider, request())) == [final]


async def test_closing_the_stream_stops_the_run_early(make_provider: ProviderFactory) -> None:
    provider = make_provider(steps=1000)
    stream = provider.run(request(stream=True, partial_images=3), "tiny")
    first = await anext(stream)
    assert isinstance(first, PartialImage)  # after step 333 of 1000
    await stream.aclose()  # what the service does when the client disconnects
    await wait_for(lambda: len(provider.engine.history) == 1)
    record = provider.engine.history[0]
    assert record.interrupted
    assert record.steps_run < record.steps == 1000


async def test_a_cancelled_queued_request_never_runs(make_provider: ProviderFactory) -> None:
    provider = make_provider(steps=1000)
    # Many previews only so that the first comes early (step 99): the runs are cut short anyway.
    running = provider.run(request(stream=True, partial_images=10), "tiny")
    assert isinstance(await anext(running), PartialImage)
    queued = asyncio.create_task(collect(provider, request(prompt="never")))
    await wait_for(lambda: provider.engine.batcher.pending == 1)
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    await running.aclose()
    # A later request runs next: the worker has passed over the cancelled one by then.
    later = provider.run(request(prompt="later", stream=True, partial_images=10), "tiny")
    assert isinstance(await anext(later), PartialImage)
    await later.aclose()
    await wait_for(lambda: len(provider.engine.history) == 2)
    # Had the cancelled one run, it would be second, interrupted at its first step.
    assert provider.engine.history[1].steps_run >= 100
    assert [record.interrupted for record in provider.engine.history] == [True, True]


async def test_timeout_is_a_504_and_stops_the_run(make_provider: ProviderFactory) -> None:
    provider = make_provider(steps=1000, timeout_s=0.5)
    with pytest.raises(UpstreamTimeout):
        await collect(provider, request())
    await wait_for(lambda: len(provider.engine.history) == 1)
    assert provider.engine.history[0].steps_run < 1000


async def test_inference_runs_off_the_event_loop(make_provider: ProviderFactory) -> None:
    provider = make_provider(steps=60)
    ticks = 0
    run = asyncio.create_task(result_of(provider, request()))
    while not run.done():
        ticks += 1
        await asyncio.sleep(0.005)
    await run
    # Inference inline would have blocked the loop for the whole run: no ticks at all.
    assert ticks >= 5


# -- edits ------------------------------------------------------------------------------------


def edit_request(**fields: Any) -> ImageRequest:
    source = InputImage(data=image_bytes((64, 48)), format="png", width=64, height=48)
    return ImageRequest(
        operation="edit", model="tiny", prompt="make it blue", images=[source], extra={"seed": 3}, **fields
    )


async def test_edit_runs_image_to_image(make_provider: ProviderFactory) -> None:
    provider = make_provider(steps=2, strength=0.5)
    result = await result_of(provider, edit_request())
    # auto: the input's 4:3 shape at the model's native long side (32), on the 8-pixel grid.
    assert result.size == "32x24"
    assert open_image(pngs(result)[0]).size == (32, 24)
    assert result.images[0].seed == 3
    again = await result_of(provider, edit_request(size="32x32"))
    assert open_image(pngs(again)[0]).size == (32, 32)


async def test_edit_with_a_mask_is_a_400(make_provider: ProviderFactory) -> None:
    mask = InputImage(
        data=image_bytes((64, 48), mode="RGBA", color=(0, 0, 0, 0)),
        format="png",
        width=64,
        height=48,
        has_alpha=True,
    )
    with pytest.raises(InvalidRequest) as caught:
        await collect(make_provider(), edit_request(mask=mask))
    assert caught.value.param == "mask"


async def test_a_model_without_image_to_image_cannot_edit(tiny_pipeline: Any) -> None:
    import diffusers

    class PlainPipeline(diffusers.StableDiffusionPipeline):  # type: ignore[misc]
        """A pipeline family diffusers has no img2img mapping for."""

    register_pipeline("plain", PlainPipeline(**tiny_pipeline.components, requires_safety_checker=False))
    channel = ChannelConfig(
        name="plain", provider="diffusers", models=["tiny"], options={"pipeline": "plain"}
    )
    provider = DiffusersProvider(channel, cast("HttpClients", None))
    try:
        with pytest.raises(InvalidRequest) as caught:
            await collect(provider, edit_request())
        assert caught.value.param == "model"
        assert "cannot edit" in caught.value.message
    finally:
        await provider.aclose()
        unregister_pipeline("plain")


async def test_a_failing_run_is_a_502_and_the_worker_survives(make_provider: ProviderFactory) -> None:
    # LCM's schedule cannot make 100 steps: the pipeline itself raises, inside the worker.
    provider = make_provider(scheduler="LCMScheduler", steps=100)
    for _ in range(2):
        with pytest.raises(UpstreamFailed) as caught:
            await collect(provider, request())
        assert caught.value.code == "local_model_error"
        assert "ValueError" in caught.value.message


async def test_requests_after_close_are_refused(make_provider: ProviderFactory) -> None:
    provider = make_provider()
    await provider.aclose()
    with pytest.raises(UpstreamFailed, match="shutting down"):
        await collect(provider, request())


# -- loading and configuration ----------------------------------------------------------------


async def test_weights_saved_to_disk_load_through_from_pretrained(
    tiny_pipeline: Any, make_provider: ProviderFactory, tmp_path: Path
) -> None:
    # The real-weights path: a model directory, loaded with local_files_only (no network).
    tiny_pipeline.save_pretrained(tmp_path / "tiny-model")
    channel = ChannelConfig(
        name="disk",
        provider="diffusers",
        models=["tiny"],
        options={"model": str(tmp_path / "tiny-model"), "steps": 2, "device": "cpu"},
    )
    provider = DiffusersProvider(channel, cast("HttpClients", None))
    try:
        loaded = await result_of(provider, request(seed=9))
    finally:
        await provider.aclose()
    assert pngs(loaded) == pngs(await result_of(make_provider(), request(seed=9)))


def test_a_model_directory_that_does_not_exist_fails_at_start(tiny_pipeline: Any, tmp_path: Path) -> None:
    channel = ChannelConfig(
        name="broken", provider="diffusers", models=["x"], options={"model": str(tmp_path / "nope")}
    )
    with pytest.raises(ValueError, match=r"channel 'broken': cannot load diffusers model"):
        DiffusersProvider(channel, cast("HttpClients", None))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "needs options.model"),
        ({"model": "a", "pipeline": TINY}, "not both"),
        ({"pipeline": TINY, "step": 2}, "invalid diffusers options"),
        ({"pipeline": TINY, "steps": 0}, "invalid diffusers options"),
        ({"pipeline": "unknown"}, "no pipeline registered as 'unknown'"),
        ({"pipeline": TINY, "scheduler": "NoSuchScheduler"}, "unknown diffusers scheduler"),
    ],
)
def test_bad_options_fail_at_start(tiny_pipeline: Any, options: dict[str, Any], message: str) -> None:
    channel = ChannelConfig(name="bad", provider="diffusers", models=["x"], options=options)
    with pytest.raises(ValueError, match=message):
        DiffusersProvider(channel, cast("HttpClients", None))


async def test_a_scheduler_option_replaces_the_models_own(make_provider: ProviderFactory) -> None:
    euler = make_provider(scheduler="EulerDiscreteScheduler")
    ancestral = make_provider()
    # Plain Euler adds no noise after the start, so it gives a different image for the seed.
    assert pngs(await result_of(euler, request())) != pngs(await result_of(ancestral, request()))


def test_missing_packages_name_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    # Runs with or without the extra: a None entry makes the import fail as if absent.
    monkeypatch.setitem(sys.modules, "diffusers", None)
    channel = ChannelConfig(name="gpu", provider="diffusers", models=["x"], options={"model": "/m"})
    with pytest.raises(MissingLocalDependencies) as caught:
        DiffusersProvider(channel, cast("HttpClients", None))
    assert "pip install 'imagegate[local]'" in str(caught.value)
    assert "channel 'gpu'" in str(caught.value)
    assert "diffusers" in str(caught.value)


# -- end to end -------------------------------------------------------------------------------


def test_generate_through_the_gateway_with_a_seed(tiny_pipeline: Any, make_gateway: GatewayFactory) -> None:
    gateway = make_gateway(
        channels=[
            {
                "name": "local-tiny",
                "provider": "diffusers",
                "models": [TINY],
                "options": {"pipeline": TINY, "steps": 2},
            }
        ],
    )
    client = gateway.client()
    runs = [
        client.images.generate(
            model=TINY,
            prompt="a lighthouse",
            size="32x32",
            n=2,
            response_format="b64_json",
            extra_body={"seed": 7},
        )
        for _ in range(2)
    ]
    first, second = ([base64.b64decode(item.b64_json or "") for item in run.data or []] for run in runs)
    assert first == second
    assert len(first) == 2 and first[0] != first[1]
    assert [open_image(raw).size for raw in first] == [(32, 32), (32, 32)]
    assert [(item.model_extra or {}).get("seed") for item in runs[0].data or []] == [7, 8]
    assert runs[0].size == "32x32"
    assert runs[0].output_format == "png"


def test_stream_through_the_gateway(tiny_pipeline: Any, make_gateway: GatewayFactory) -> None:
    gateway = make_gateway(
        channels=[
            {"name": "local-tiny", "provider": "diffusers", "models": [TINY], "options": {"pipeline": TINY}}
        ],
    )
    stream = gateway.client().images.generate(
        model=TINY, prompt="a lighthouse", size="32x32", stream=True, partial_images=1, extra_body={"seed": 7}
    )
    events = list(stream)
    assert [event.type for event in events] == [
        "image_generation.partial_image",
        "image_generation.completed",
    ]
    for event in events:
        assert open_image(base64.b64decode(event.b64_json)).size == (32, 32)


# -- through the provider pool (what the live catalog uses) ------------------------------------


async def test_the_pool_loads_a_local_model_once_off_the_loop_and_keeps_it(
    tiny_pipeline: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[int] = []
    real_load = diffusers_module.load_model

    def counted_load(*args: Any, **kwargs: Any) -> Any:
        loads.append(threading.get_ident())
        return real_load(*args, **kwargs)

    monkeypatch.setattr(diffusers_module, "load_model", counted_load)
    options = {"pipeline": TINY, "steps": 2, "batch_window_ms": 0}
    local = ChannelConfig(name="local", provider="diffusers", models=["tiny"], options=options)
    pool = ProviderPool(cast("HttpClients", None))
    try:
        settings = Settings(demo=False)
        first, second = await asyncio.gather(pool.catalog(settings, [local]), pool.catalog(settings, [local]))
        reweighted = await pool.catalog(settings, [local.model_copy(update={"weight": 5, "priority": 1})])
        provider = first.channels[0].provider
        assert second.channels[0].provider is provider and reweighted.channels[0].provider is provider
        assert len(loads) == 1 and loads[0] != threading.get_ident()  # once, in a worker thread
        assert isinstance(provider, DiffusersProvider)
        assert isinstance(await result_of(provider, request()), ImageResult)
    finally:
        await pool.aclose()
