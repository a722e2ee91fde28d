"""Provider classes register themselves by name; the catalog checks their capability flags.

- every built-in provider is found by its ``name`` alone, and finding them imports no torch;
- a channel naming an unknown provider, or a ``needs_key`` provider without a key, stops the
  catalog (and so the gateway's start-up) with a message naming the channel;
- a ``can_edit = False`` channel is never routed an edit.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from imagegate.domain import ImageRequest
from imagegate.errors import InvalidRequest
from imagegate.providers.base import Provider
from imagegate.providers.registry import Catalog, check_catalog, provider_class, provider_names
from imagegate.services.routing import ChannelRouter
from imagegate.settings import ChannelConfig, Settings
from tests.fakes.provider import FakeGenerateOnlyProvider, FakeProvider

BUILT_IN = {"demo", "diffusers", "gemini", "openai", "openai-chat-image"}


def test_every_built_in_provider_is_found_by_its_name() -> None:
    assert set(provider_names()) >= BUILT_IN
    for name in BUILT_IN:
        assert provider_class(name).name == name


def test_finding_providers_imports_no_heavy_library() -> None:
    code = (
        "import sys, imagegate.app\n"
        "from imagegate.providers.registry import provider_class, provider_names\n"
        "provider_names(); provider_class('diffusers')\n"
        "heavy = sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_a_second_class_with_a_taken_name_is_refused() -> None:
    with pytest.raises(TypeError, match="two provider classes are named 'openai'"):
        type("Impostor", (Provider,), {"name": "openai"})


def test_an_unknown_provider_names_the_channel_and_the_known_ones() -> None:
    settings = Settings(demo=False, channels=[ChannelConfig(name="x", provider="dalle-9", models=["m"])])
    with pytest.raises(ValueError, match=r"channel 'x': unknown provider 'dalle-9' \(.*openai.*\)"):
        Catalog(settings, http=None)


@pytest.mark.parametrize("provider", ["openai", "openai-chat-image", "gemini"])
def test_a_channel_that_needs_a_key_fails_the_catalog_without_one(provider: str) -> None:
    channel = ChannelConfig(
        name="keyless", provider=provider, models=["m"], api_key="env:IMAGEGATE_UNSET_VAR"
    )
    with pytest.raises(ValueError, match=f"channel 'keyless': the {provider} provider needs api_key"):
        check_catalog(Settings(demo=False, channels=[channel]))


def test_providers_without_a_key_need_none() -> None:
    assert not provider_class("demo").needs_key and not provider_class("diffusers").needs_key
    check_catalog(Settings(demo=True))


def test_the_gateway_does_not_start_with_a_keyless_channel(tmp_path: Path) -> None:
    channel = {"name": "main", "provider": "openai", "models": ["gpt-image-1"]}
    config = tmp_path / "imagegate.toml"
    config.write_text(
        "[[channels]]\n" + "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in channel.items()) + "\n"
    )
    imagegate = str(Path(sys.executable).with_name("imagegate"))
    env = {"PATH": "/usr/bin:/bin", "IMAGEGATE_CONFIG": str(config), "IMAGEGATE_DATA_DIR": str(tmp_path)}
    root = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = str(root)
    done = subprocess.run(
        [imagegate, "serve", "--port", "0"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode != 0
    assert "channel 'main': the openai provider needs api_key" in done.stdout + done.stderr


# -- routing by capability ---------------------------------------------------------------------


def edit_request(model: str = "m") -> ImageRequest:
    return ImageRequest(operation="edit", model=model, prompt="make it blue")


def router(*channels: dict[str, Any]) -> ChannelRouter:
    configs = [ChannelConfig(models=["m"], **channel) for channel in channels]
    settings = Settings(demo=False, channels=configs)
    return ChannelRouter(Catalog(settings, http=None, providers=_fakes(configs)))


def _fakes(configs: list[ChannelConfig]) -> dict[str, Provider]:
    made: dict[str, Provider] = {}
    for config in configs:
        cls = FakeGenerateOnlyProvider if config.provider == "fake-generate-only" else FakeProvider
        made[config.name] = cls(config)
    return made


async def test_an_edit_skips_a_channel_that_cannot_edit() -> None:
    routes = router(
        {"name": "generate-only", "provider": "fake-generate-only", "priority": 0},
        {"name": "edits", "provider": "fake", "priority": 1},
    )
    for _ in range(5):
        used = [channel.name async for channel, _ in routes.run(edit_request())]
        assert used == ["edits"]
    generate = ImageRequest(operation="generate", model="m", prompt="a cat")
    assert [channel.name async for channel, _ in routes.run(generate)] == ["generate-only"]
    assert routes.catalog.channel("generate-only") is not None
    assert not routes.catalog.channels_for("m")[0].can_edit


async def test_an_edit_on_a_model_no_channel_can_edit_is_a_400() -> None:
    routes = router({"name": "generate-only", "provider": "fake-generate-only"})
    only = routes.catalog.channels[0].provider
    assert isinstance(only, FakeProvider)
    with pytest.raises(InvalidRequest, match="can edit images") as caught:
        async for _ in routes.run(edit_request()):
            pass
    assert caught.value.param == "model" and only.calls == []  # the provider was never called
