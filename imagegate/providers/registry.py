"""Models and channels: which public model names exist, what they accept, who serves them."""

from __future__ import annotations

import importlib
import random
from dataclasses import dataclass
from typing import Any, Literal

from imagegate.errors import InvalidRequest, ModelNotFound, NoHealthyChannel
from imagegate.http import HttpClients
from imagegate.media.sizes import SizeRule
from imagegate.providers.base import Provider
from imagegate.settings import ChannelConfig, ModelConfig, Settings

# Provider classes by config name, imported on first use so optional heavy ones
# (local diffusion models) cost nothing when unused.
PROVIDER_CLASSES = {
    "demo": "imagegate.providers.demo:DemoProvider",
    "openai": "imagegate.providers.openai:OpenAIProvider",
    "openai-chat-image": "imagegate.providers.openai_chat_image:OpenAIChatImageProvider",
    "gemini": "imagegate.providers.gemini:GeminiProvider",
    "diffusers": "imagegate.providers.diffusers:DiffusersProvider",
}

DEMO_CHANNEL = ChannelConfig(name="demo", provider="demo", models=["demo"])
DEMO_MODELS = {
    "demo": ModelConfig(sizes="custom"),
    "demo-chat": ModelConfig(kind="chat-image", image_model="demo"),
}

_STANDARD_SIZES = ["auto", "1024x1024", "1536x1024", "1024x1536"]


def default_sizes(model: str) -> SizeRule:
    """What a model accepts when the config does not say: OpenAI's published sets by family."""
    if model.startswith("gpt-image-2"):
        return "custom"
    if model.startswith(("gpt-image-1", "chatgpt-image")):
        return list(_STANDARD_SIZES)
    if model.startswith("dall-e-3"):
        return ["1024x1024", "1792x1024", "1024x1792"]
    if model.startswith("dall-e-2"):
        return ["256x256", "512x512", "1024x1024"]
    return "any"


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    kind: Literal["image", "chat-image"]
    sizes: SizeRule
    max_n: int
    image_model: str | None = None
    price: dict[str, Any] | None = None
    size_policy: Literal["strict", "nearest"] = "strict"


@dataclass(slots=True)
class Channel:
    config: ChannelConfig
    provider: Provider

    @property
    def name(self) -> str:
        return self.config.name


def load_provider_class(name: str) -> type[Provider]:
    target = PROVIDER_CLASSES.get(name)
    if target is None:
        raise ValueError(f"provider '{name}' is not available in this version of imagegate")
    module_name, _, attr = target.partition(":")
    cls: type[Provider] = getattr(importlib.import_module(module_name), attr)
    return cls


class Catalog:
    """The models a gateway serves and the channels behind each, built once from settings."""

    def __init__(self, settings: Settings, http: HttpClients) -> None:
        configs = list(settings.channels)
        model_configs = dict(settings.models)
        if settings.demo:
            configs.append(DEMO_CHANNEL)
            for name, config in DEMO_MODELS.items():
                model_configs.setdefault(name, config)
        self.channels: list[Channel] = [
            Channel(config, load_provider_class(config.provider)(config, http)) for config in configs
        ]
        self._by_model: dict[str, list[Channel]] = {}
        for channel in self.channels:
            for model in channel.config.models:
                self._by_model.setdefault(model, []).append(channel)
        self.models: dict[str, ModelSpec] = {}
        for name in [*self._by_model, *model_configs]:
            self.models[name] = self._spec(name, model_configs.get(name))
        for spec in self.models.values():
            if spec.kind == "chat-image" and spec.image_model not in self.models:
                raise ValueError(
                    f"chat model '{spec.name}' is bound to unknown image model '{spec.image_model}'"
                )

    @staticmethod
    def _spec(name: str, config: ModelConfig | None) -> ModelSpec:
        config = config or ModelConfig()
        return ModelSpec(
            name=name,
            kind=config.kind,
            sizes=config.sizes if config.sizes is not None else default_sizes(name),
            max_n=config.max_n or (1 if name.startswith("dall-e-3") else 10),
            image_model=config.image_model,
            price=config.price,
            size_policy=config.size_policy,
        )

    def model(self, name: str) -> ModelSpec:
        spec = self.models.get(name)
        if spec is None:
            raise ModelNotFound(f"The model '{name}' does not exist.", param="model")
        return spec

    def image_model(self, name: str) -> ModelSpec:
        """A model for /v1/images/*; a chat-image model there is the client's mistake."""
        spec = self.model(name)
        if spec.kind == "chat-image":
            raise InvalidRequest(
                f"'{name}' is a chat-image model: call it on /v1/chat/completions, "
                f"or use '{spec.image_model}' on /v1/images/*.",
                param="model",
                code="wrong_endpoint",
            )
        return spec

    def chat_model(self, name: str) -> ModelSpec:
        """A model for /v1/chat/completions; only chat-image models are served there."""
        spec = self.model(name)
        if spec.kind != "chat-image":
            raise InvalidRequest(
                f"'{name}' is an image model: call it on /v1/images/generations or /v1/images/edits.",
                param="model",
                code="wrong_endpoint",
            )
        return spec

    def channels_for(self, model: str) -> list[Channel]:
        return self._by_model.get(model, [])

    def pick_channel(self, model: str) -> Channel:
        """A channel of the best (lowest) priority tier, chosen by weight inside the tier."""
        channels = self.channels_for(model)
        if not channels:
            raise NoHealthyChannel(f"No channel serves the model '{model}'.")
        best = min(channel.config.priority for channel in channels)
        tier = [channel for channel in channels if channel.config.priority == best]
        if len(tier) == 1:
            return tier[0]
        return random.choices(tier, weights=[channel.config.weight for channel in tier])[0]

    async def aclose(self) -> None:
        for channel in self.channels:
            await channel.provider.aclose()
