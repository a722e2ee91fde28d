"""Models and channels: which public model names exist, what they accept, who serves them.

A :class:`Catalog` is an immutable table, a snapshot: models, and the enabled channels each with
its provider instance. It is built by :class:`~imagegate.providers.pool.ProviderPool` (which
reuses unchanged providers across snapshots) and swapped whole when channels change; a request
reads one snapshot from start to end.

Provider classes are found by name: every module of this package is imported on the first
lookup, and each `Provider` subclass registers itself under its ``name`` (see `providers.base`).
None of them imports a heavy library (torch, diffusers) at import time, so this stays cheap.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import imagegate.providers as _package
from imagegate.errors import InvalidRequest, ModelNotFound
from imagegate.media.sizes import SizeRule
from imagegate.providers.base import REGISTERED, Provider
from imagegate.settings import ChannelConfig, ModelConfig, Settings

if TYPE_CHECKING:
    from imagegate.http import HttpClients

DEMO_CHANNEL = ChannelConfig(name="demo", provider="demo", models=["demo"])
DEMO_MODELS = {
    "demo": ModelConfig(sizes="custom"),
    "demo-chat": ModelConfig(kind="chat-image", image_model="demo"),
}

_STANDARD_SIZES = ["auto", "1024x1024", "1536x1024", "1024x1536"]
_discovered = False


def _discover() -> None:
    """Import every module of this package once, so each provider class registers itself."""
    global _discovered
    if _discovered:
        return
    for module in pkgutil.iter_modules(_package.__path__):
        if not module.ispkg:
            importlib.import_module(f"{_package.__name__}.{module.name}")
    _discovered = True


def provider_names() -> list[str]:
    """Every provider a channel may name (``provider = "..."``)."""
    _discover()
    return sorted(REGISTERED)


def provider_class(name: str) -> type[Provider]:
    if name not in REGISTERED:
        _discover()
    cls = REGISTERED.get(name)
    if cls is None:
        known = ", ".join(provider_names())
        raise ValueError(f"unknown provider '{name}' (this version of imagegate has: {known})")
    return cls


def check_channel(config: ChannelConfig) -> type[Provider]:
    """The channel's provider class, after the checks its capability flags ask for."""
    try:
        cls = provider_class(config.provider)
    except ValueError as exc:
        raise ValueError(f"channel '{config.name}': {exc}") from exc
    if cls.needs_key and not config.api_key:
        raise ValueError(
            f"channel '{config.name}': the {cls.name} provider needs api_key "
            '(a literal key, or "env:NAME" with the variable NAME set)'
        )
    return cls


def channel_configs(settings: Settings, stored: Sequence[ChannelConfig] = ()) -> list[ChannelConfig]:
    """Every channel: the config file's, then the database's, then the built-in demo."""
    configs = [*settings.channels, *stored]
    if settings.demo:
        configs.append(DEMO_CHANNEL)
    seen: set[str] = set()
    for config in configs:
        if config.name in seen:
            raise ValueError(f"two channels are named '{config.name}'")
        seen.add(config.name)
    return configs


def check_catalog(settings: Settings, stored: Sequence[ChannelConfig] = ()) -> None:
    """Raise ValueError when these channels would not make a catalog; builds no provider."""
    configs = channel_configs(settings, stored)
    for config in configs:
        check_channel(config)
    model_specs(settings, configs)


def model_specs(settings: Settings, configs: Sequence[ChannelConfig]) -> dict[str, ModelSpec]:
    """Every model the channels serve or the config describes; a channel's models count even
    while it is disabled (asking for them is a 503, not a 404)."""
    model_configs = dict(settings.models)
    if settings.demo:
        for name, model_config in DEMO_MODELS.items():
            model_configs.setdefault(name, model_config)
    names = [model for config in configs for model in config.models]
    models = {name: _spec(name, model_configs.get(name)) for name in [*names, *model_configs]}
    for spec in models.values():
        if spec.kind == "chat-image" and spec.image_model not in models:
            raise ValueError(f"chat model '{spec.name}' is bound to unknown image model '{spec.image_model}'")
    return models


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


@dataclass(frozen=True, slots=True)
class Channel:
    config: ChannelConfig
    provider: Provider

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def can_edit(self) -> bool:
        return self.provider.can_edit

    @property
    def can_stream(self) -> bool:
        return self.provider.can_stream


class Catalog:
    """One immutable snapshot of the models a gateway serves and the channels behind each.

    ``Catalog(settings, http)`` builds and owns its providers (the CLI, tests);
    ``Catalog(settings, providers=..., stored=...)`` takes them from a pool, which owns them.
    """

    def __init__(
        self,
        settings: Settings,
        http: HttpClients | None = None,
        *,
        stored: Sequence[ChannelConfig] = (),
        providers: Mapping[str, Provider] | None = None,
        version: int = 0,
    ) -> None:
        configs = channel_configs(settings, stored)
        classes = {config.name: check_channel(config) for config in configs}
        self.version = version
        #: Every channel's config, disabled ones included (for listings).
        self.configs: tuple[ChannelConfig, ...] = tuple(configs)
        self._owns_providers = providers is None
        if providers is None:
            if http is None:
                raise TypeError("Catalog needs http to build its own providers")
            providers = {c.name: classes[c.name](c, http) for c in configs if c.enabled}
        self.channels: tuple[Channel, ...] = tuple(
            Channel(config, providers[config.name]) for config in configs if config.enabled
        )
        by_model: dict[str, list[Channel]] = {}
        for channel in self.channels:
            for model in channel.config.models:
                by_model.setdefault(model, []).append(channel)
        self._by_model = {model: tuple(channels) for model, channels in by_model.items()}
        self.models: Mapping[str, ModelSpec] = MappingProxyType(model_specs(settings, configs))

    @property
    def current(self) -> Catalog:
        """A snapshot is its own current catalog (see `services.catalog.CatalogService`)."""
        return self

    def model(self, name: str, *, may_use: Callable[[str], bool] | None = None) -> ModelSpec:
        """The model's spec; a 404 naming the models the caller may use (``may_use``) when unknown."""
        spec = self.models.get(name)
        if spec is None:
            raise self.unknown(name, may_use)
        return spec

    def unknown(self, name: str, may_use: Callable[[str], bool] | None = None) -> ModelNotFound:
        """The 404 for a model that is not served: what the caller can use instead, and how to add one."""
        usable = sorted(model for model in self.models if may_use is None or may_use(model))
        offer = f"Models this key can use: {', '.join(usable)}." if usable else "This key can use no model."
        return ModelNotFound(
            f"The model '{name}' does not exist. {offer} An operator serves more models by adding a "
            "channel ([[channels]] in imagegate.toml, or POST /admin/channels).",
            param="model",
        )

    def image_model(self, name: str, *, may_use: Callable[[str], bool] | None = None) -> ModelSpec:
        """A model for /v1/images/*; a chat-image model there is the client's mistake."""
        spec = self.model(name, may_use=may_use)
        if spec.kind == "chat-image":
            raise InvalidRequest(
                f"'{name}' is a chat-image model: call it on /v1/chat/completions, "
                f"or use '{spec.image_model}' on /v1/images/*.",
                param="model",
                code="wrong_endpoint",
            )
        return spec

    def chat_model(self, name: str, *, may_use: Callable[[str], bool] | None = None) -> ModelSpec:
        """A model for /v1/chat/completions; only chat-image models are served there."""
        spec = self.model(name, may_use=may_use)
        if spec.kind != "chat-image":
            raise InvalidRequest(
                f"'{name}' is an image model: call it on /v1/images/generations or /v1/images/edits.",
                param="model",
                code="wrong_endpoint",
            )
        return spec

    def channels_for(self, model: str) -> list[Channel]:
        return list(self._by_model.get(model, ()))

    def channel(self, name: str) -> Channel | None:
        return next((channel for channel in self.channels if channel.name == name), None)

    async def aclose(self) -> None:
        """Close the providers this catalog built itself; a pool's providers are the pool's."""
        if self._owns_providers:
            for channel in self.channels:
                await channel.provider.aclose()
