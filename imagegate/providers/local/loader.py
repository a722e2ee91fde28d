"""Loading a local diffusers pipeline for a channel, and the per-call pipelines that share it.

A channel names its model in ``options``::

    [[channels]]
    name = "local-turbo"
    provider = "diffusers"
    models = ["sd-turbo"]
    options = { model = "/models/sd-turbo", steps = 2, guidance_scale = 0.0 }

``model`` is a local directory or a hub id already in the Hugging Face cache
(``local_files_only`` defaults to true: the gateway never downloads weights on its own).
Code that builds a pipeline itself (tests, embedding apps) registers it by name and points
the channel at it; it then goes through exactly the same code as loaded weights::

    register_pipeline("tiny", pipe)
    ChannelConfig(name="local", provider="diffusers", models=["tiny"], options={"pipeline": "tiny"})
"""

from __future__ import annotations

import importlib
import inspect
import logging
import threading
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from imagegate.settings import ChannelConfig

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'imagegate[local]'"

_registry: dict[str, Any] = {}
_registry_lock = threading.Lock()


class MissingLocalDependencies(RuntimeError):
    """torch or diffusers is not installed; raised when a ``diffusers`` channel starts."""


class LocalOptions(BaseModel):
    """A ``diffusers`` channel's ``options``; unknown keys are refused so typos surface at start-up."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    pipeline: str | None = None
    device: str | None = None
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    variant: str | None = None
    local_files_only: bool = True
    #: A diffusers scheduler class name to run with instead of the model's own.
    scheduler: str | None = None
    steps: int = Field(default=4, ge=1, le=1000)
    guidance_scale: float = Field(default=0.0, ge=0.0)
    #: How much an edit may change its input (img2img ``strength``).
    strength: float = Field(default=0.6, gt=0.0, le=1.0)
    #: Images per pipeline call when requests of the same shape are batched.
    max_batch: int = Field(default=4, ge=1)
    batch_window_ms: float = Field(default=20.0, ge=0.0)

    @classmethod
    def of(cls, channel: ChannelConfig) -> LocalOptions:
        try:
            options = cls.model_validate(channel.options)
        except ValidationError as exc:
            raise ValueError(f"channel '{channel.name}': invalid diffusers options: {exc}") from exc
        if options.model is None and options.pipeline is None:
            raise ValueError(
                f"channel '{channel.name}': the diffusers provider needs options.model "
                "(a local directory or a cached hub id)"
            )
        if options.model is not None and options.pipeline is not None:
            raise ValueError(f"channel '{channel.name}': set options.model or options.pipeline, not both")
        return options


def register_pipeline(name: str, pipeline: Any) -> None:
    """Make an already-built pipeline available to channels with ``options.pipeline = name``."""
    with _registry_lock:
        _registry[name] = pipeline


def unregister_pipeline(name: str) -> None:
    with _registry_lock:
        _registry.pop(name, None)


def require_dependencies(channel_name: str) -> None:
    """Fail with the install command when the optional local-model packages are missing."""
    missing = []
    for module in ("torch", "diffusers"):
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise MissingLocalDependencies(
            f"channel '{channel_name}' uses the diffusers provider, which needs {' and '.join(missing)} "
            f"(not installed): {INSTALL_HINT}"
        )


@dataclass(slots=True)
class LocalModel:
    """A loaded pipeline plus what requests need to know about it."""

    pipeline: Any
    default_size: tuple[int, int]
    #: Requested sides are rounded to a multiple of this (the latent grid).
    size_multiple: int
    scheduler_class: Any
    img2img_class: Any | None

    @property
    def can_edit(self) -> bool:
        return self.img2img_class is not None

    def call_pipeline(self, *, edit: bool) -> Any:
        """A pipeline for one call: the shared weights with a scheduler of its own.

        Schedulers keep per-run state (timesteps, step index), so two runs must never share
        one. This is what ``from_pipe`` does, minus its ``.to(dtype)``, which would cast the
        shared modules in place (e.g. float32-pinned layers of a float16 model).
        """
        base = self.pipeline
        cls: Any = self.img2img_class if edit else type(base)
        components = dict(base.components)
        components["scheduler"] = self.scheduler_class.from_config(base.scheduler.config)
        accepted = inspect.signature(cls.__init__).parameters
        components = {key: value for key, value in components.items() if key in accepted}
        for key, value in base.config.items():
            # Non-module settings such as requires_safety_checker.
            if key in accepted and key not in components and not key.startswith("_"):
                components[key] = value
        pipe = cls(**components)
        pipe.set_progress_bar_config(disable=True)
        return pipe


def load_model(channel: ChannelConfig, options: LocalOptions) -> LocalModel:
    """Load (or look up) the channel's pipeline; errors name the channel and the cause."""
    require_dependencies(channel.name)
    if options.pipeline is not None:
        with _registry_lock:
            pipe = _registry.get(options.pipeline)
        if pipe is None:
            raise ValueError(f"channel '{channel.name}': no pipeline registered as '{options.pipeline}'")
    else:
        assert options.model is not None
        pipe = _from_pretrained(channel, options, options.model)
    return _describe(pipe, options)


def _from_pretrained(channel: ChannelConfig, options: LocalOptions, model: str) -> Any:
    import torch

    diffusers: Any = importlib.import_module("diffusers")
    device = options.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = _torch_dtype(options.dtype, device)
    kwargs: dict[str, Any] = {_dtype_keyword(): dtype, "local_files_only": options.local_files_only}
    if options.variant:
        kwargs["variant"] = options.variant
    logger.info("channel %s: loading %s on %s (%s)", channel.name, model, device, dtype)
    try:
        pipe = diffusers.DiffusionPipeline.from_pretrained(model, **kwargs)
    except (OSError, ValueError) as exc:
        raise ValueError(f"channel '{channel.name}': cannot load diffusers model '{model}': {exc}") from exc
    return pipe.to(device)


def _describe(pipe: Any, options: LocalOptions) -> LocalModel:
    diffusers: Any = importlib.import_module("diffusers")

    vae_scale = int(getattr(pipe, "vae_scale_factor", 8))
    sample = getattr(pipe, "default_sample_size", None)
    if sample is None and getattr(pipe, "unet", None) is not None:
        sample = pipe.unet.config.sample_size
    side = sample if isinstance(sample, int) else (sample[0] if sample else 64)
    # Packed-latent models (FLUX) fold 2x2 latent patches, so sides need twice the VAE factor.
    multiple = vae_scale * (2 if hasattr(pipe, "_pack_latents") else 1)
    scheduler_class: Any = type(pipe.scheduler)
    if options.scheduler is not None:
        scheduler_class = getattr(diffusers, options.scheduler, None)
        if scheduler_class is None or not hasattr(scheduler_class, "from_config"):
            raise ValueError(f"unknown diffusers scheduler '{options.scheduler}'")
    return LocalModel(
        pipeline=pipe,
        default_size=(side * vae_scale, side * vae_scale),
        size_multiple=max(8, multiple),
        scheduler_class=scheduler_class,
        img2img_class=_img2img_class(pipe),
    )


def _img2img_class(pipe: Any) -> Any | None:
    """The image-to-image pipeline for the same model family, as AutoPipelineForImage2Image maps it."""
    try:
        from diffusers.pipelines.auto_pipeline import AUTO_IMAGE2IMAGE_PIPELINES_MAPPING, _get_task_class
    except ImportError:
        return None
    return _get_task_class(AUTO_IMAGE2IMAGE_PIPELINES_MAPPING, type(pipe).__name__, False)


def _torch_dtype(name: str, device: str) -> Any:
    import torch

    if name == "auto":
        return torch.float32 if device == "cpu" else torch.float16
    return getattr(torch, name)


def _dtype_keyword() -> str:
    # diffusers renamed torch_dtype to dtype and warns on the old name; older releases know only it.
    try:
        from diffusers.utils.deprecation_utils import _resolve_dtype  # noqa: F401
    except ImportError:
        return "torch_dtype"
    return "dtype"
