"""Settings: environment variables (prefix ``IMAGEGATE_``) over an optional TOML file.

The TOML file is ``IMAGEGATE_CONFIG`` or ``./imagegate.toml`` when present. It holds the
``[[channels]]`` (upstreams and local models) and the ``[models.NAME]`` tables; see SPEC §7.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

ProviderName = Literal["openai", "openai-chat-image", "gemini", "diffusers", "demo"]


class ChannelConfig(BaseModel):
    """One upstream account or local model that serves some public model names."""

    name: str
    provider: ProviderName
    base_url: str = ""
    api_key: str = ""
    models: list[str] = Field(default_factory=list)
    model_map: dict[str, str] = Field(default_factory=dict)
    priority: int = 0
    weight: int = Field(default=1, ge=1)
    timeout_s: float = Field(default=300.0, gt=0)
    #: At most this many requests in flight on this channel (None: no limit).
    max_concurrency: int | None = Field(default=None, ge=1)
    #: Provider-specific settings (e.g. a local model's path or device).
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("api_key")
    @classmethod
    def _resolve_env_reference(cls, value: str) -> str:
        # "env:NAME" keeps secrets out of the config file itself.
        if value.startswith("env:"):
            return os.environ.get(value[4:], "")
        return value

    def upstream_model(self, public_name: str) -> str:
        return self.model_map.get(public_name, public_name)


class ModelConfig(BaseModel):
    """What a public model name accepts. Unset fields fall back to built-in defaults."""

    kind: Literal["image", "chat-image"] = "image"
    image_model: str | None = None
    sizes: Literal["custom", "any"] | list[str] | None = None
    max_n: int | None = Field(default=None, ge=1, le=10)
    price: dict[str, Any] | None = None
    #: A size outside ``sizes``: "strict" answers 400, "nearest" makes the nearest allowed size.
    size_policy: Literal["strict", "nearest"] = "strict"

    @model_validator(mode="after")
    def _chat_models_need_an_image_model(self) -> ModelConfig:
        if self.kind == "chat-image" and not self.image_model:
            raise ValueError("a chat-image model needs image_model")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IMAGEGATE_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("./data")
    public_url: str = ""
    database_url: str = ""
    redis_url: str = ""
    admin_key: str = ""
    response_format: Literal["url", "b64_json"] = "url"
    demo: bool = True
    allow_private_fetch: bool = False
    config_file: Path | None = Field(default=None, alias="IMAGEGATE_CONFIG")
    max_body_mb: float = Field(default=200.0, gt=0)
    max_image_mb: float = Field(default=50.0, gt=0)
    max_image_pixels: int = Field(default=40_000_000, gt=0)
    #: Decoded pixels of all a request's input images together (a 16-image edit of huge PNGs
    #: would otherwise cost gigabytes of memory and seconds of CPU for a few MB of upload).
    max_request_pixels: int = Field(default=120_000_000, gt=0)
    fetch_timeout_s: float = Field(default=30.0, gt=0)
    fetch_max_redirects: int = Field(default=3, ge=0)
    key_cache_ttl_s: float = Field(default=1.0, ge=0)
    stream_keepalive_s: float = Field(default=15.0, gt=0)
    #: Channels tried per request when attempts fail before any byte reached the client.
    route_max_attempts: int = Field(default=3, ge=1)
    #: Consecutive failures that rest a channel, and how long it rests before a probe.
    breaker_failures: int = Field(default=5, ge=1)
    breaker_cooldown_s: float = Field(default=30.0, gt=0)
    #: Request-log rows older than this are deleted (0 keeps them forever).
    log_retention_days: int = Field(default=90, ge=0)
    #: A process's holds are its own while it renews its lease (every third of this); once the
    #: lease runs out any process gives them back (each checks every half of this).
    hold_lease_s: float = Field(default=30.0, gt=0)
    log_level: str = "INFO"
    #: Where images live: ``file:///path`` (default: DATA_DIR/images) or ``s3://bucket/prefix``.
    storage_url: str = ""
    #: An S3-compatible endpoint (MinIO, R2…); empty means AWS itself. Keys come from AWS_*.
    s3_endpoint: str = ""
    #: How image URLs are made: served by the gateway, a public base + key, or presigned links.
    storage_urls: Literal["gateway", "public", "presigned"] = "gateway"
    storage_public_url: str = ""
    presign_s: int = Field(default=3600, ge=1, le=7 * 24 * 3600)
    #: Images older than this many days are deleted (0 keeps them forever).
    image_retention_days: int = Field(default=0, ge=0)
    #: How often `serve` looks for images past retention.
    storage_gc_interval_s: float = Field(default=3600.0, gt=0)
    #: Serve /metrics without the admin key (for a scraper on a private network).
    metrics_public: bool = False

    # The edge: which server runs the app and what it lets clients hold (see imagegate/server/).
    #: ASGI server for `imagegate serve`: uvicorn (uvloop + httptools) or granian.
    server: Literal["uvicorn", "granian"] = "uvicorn"
    #: Peers whose X-Forwarded-For / Forwarded headers are believed (CIDRs, comma-separated in
    #: the environment). Empty: the client IP is always the TCP peer's.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: The header a trusted proxy sets; only that one is read, so a client cannot smuggle the other.
    forwarded_header: Literal["x-forwarded-for", "forwarded"] = "x-forwarded-for"
    #: Longest time from a connection's opening (or its last response) to a complete request head.
    header_timeout_s: float = Field(default=10.0, gt=0)
    #: Longest wait for the next piece of a request body.
    body_timeout_s: float = Field(default=30.0, gt=0)
    #: Open client connections per process; the next one is answered 503 and closed.
    max_connections: int = Field(default=4096, ge=1)
    #: On SIGTERM, how long requests in flight may still run before they are cancelled.
    shutdown_grace_s: float = Field(default=30.0, ge=0)
    #: /readyz fails when the image store has less free space than this.
    storage_min_free_mb: float = Field(default=256.0, ge=0)
    #: Threads for CPU-heavy image work (decoding big inputs, transcoding); 0: half the CPUs.
    image_work_threads: int = Field(default=0, ge=0)

    channels: list[ChannelConfig] = Field(default_factory=list)
    models: dict[str, ModelConfig] = Field(default_factory=dict)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_and_check_cidrs(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            for entry in value:
                ipaddress.ip_network(str(entry), strict=False)  # ValueError names the bad entry
        return value

    @property
    def resolved_public_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'imagegate.db'}"

    @property
    def images_dir(self) -> Path:
        return self.data_dir / "images"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Order is precedence: explicit arguments, then the environment, then the TOML file.
        return (init_settings, env_settings, TomlFileSource(settings_cls, init_settings))


class TomlFileSource(PydanticBaseSettingsSource):
    """Reads the TOML config file named by the arguments, ``IMAGEGATE_CONFIG`` or the default."""

    def __init__(self, settings_cls: type[BaseSettings], init: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        explicit = init.init_kwargs.get("IMAGEGATE_CONFIG") if isinstance(init, InitSettingsSource) else None
        self.path = Path(explicit or os.environ.get("IMAGEGATE_CONFIG") or "imagegate.toml")
        self.required = bool(explicit or os.environ.get("IMAGEGATE_CONFIG"))

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # __call__ does the work

    def __call__(self) -> dict[str, Any]:
        if not self.path.is_file():
            if self.required:
                raise FileNotFoundError(f"config file not found: {self.path}")
            return {}
        with self.path.open("rb") as handle:
            return tomllib.load(handle)


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build settings; ``config_file`` beats ``IMAGEGATE_CONFIG``, ``overrides`` beat everything."""
    if config_file is not None:
        overrides["IMAGEGATE_CONFIG"] = str(config_file)
    return Settings(**overrides)
