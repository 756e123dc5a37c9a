"""The only place that reads configuration: the TOML file and command-line overrides.

`load_settings` is called once, at the composition root (the CLI), and the resulting frozen
values are handed down. Nothing else in Loupe reads the environment or a config file.
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from loupe.errors import ConfigError

DEFAULT_MODEL = "HuggingFaceTB/SmolVLM-256M-Instruct"

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class ImageSettings(BaseModel):
    """Per-model limits on the images of a request."""

    model_config = _FROZEN

    max_images: int = Field(8, ge=0, le=64)
    max_image_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(50_000_000, ge=1)
    max_image_side: int = Field(16_384, ge=1)
    min_image_side: int = Field(1, ge=1)
    auto_detail_token_budget: int = Field(1024, ge=16)


class UpstreamOptions(BaseModel):
    """How Loupe talks to an upstream model's replicas."""

    model_config = _FROZEN

    health_interval_s: float = Field(5.0, gt=0)
    connect_timeout_s: float = Field(2.0, gt=0)
    read_timeout_s: float = Field(120.0, gt=0, description="also bounds the wait for the first token")
    max_attempts: int = Field(3, ge=1, description="replicas tried while nothing was sent to the client")
    max_failures: int = Field(2, ge=1, description="consecutive failures before a replica is taken out")


class ModelSettings(BaseModel):
    """One served model: where its weights are and how it is exposed."""

    model_config = _FROZEN

    id: str = Field(min_length=1)
    checkpoint: str = Field(min_length=1)
    family: str | None = None
    context_size: int | None = Field(None, ge=16)
    owned_by: str = "loupe"
    engine: Literal["local", "upstream"] = "local"
    upstream: tuple[str, ...] = Field((), description="OpenAI-compatible base URLs ending in /v1")
    upstream_model: str | None = Field(None, description="the model's name upstream (default: id)")
    upstream_options: UpstreamOptions = UpstreamOptions()
    rpm: int | None = Field(None, ge=1, description="requests per minute, per key, on this model")
    tpm: int | None = Field(None, ge=1, description="tokens per minute (image tokens included), per key, on this model")
    input_price_per_m: Decimal = Field(Decimal(0), ge=0, description="per million input tokens (image tokens included)")
    output_price_per_m: Decimal = Field(Decimal(0), ge=0, description="per million completion tokens")
    images: ImageSettings = ImageSettings()

    @model_validator(mode="after")
    def _upstream_needs_urls(self) -> ModelSettings:
        if self.engine == "upstream" and not self.upstream:
            raise ValueError(f"model {self.id!r}: engine 'upstream' needs at least one URL in `upstream`")
        return self


class FetchSettings(BaseModel):
    """How Loupe fetches image URLs."""

    model_config = _FROZEN

    allow_media_hosts: tuple[str, ...] = ()
    allowed_domains: tuple[str, ...] = ()
    connect_timeout_s: float = Field(5.0, gt=0)
    read_timeout_s: float = Field(10.0, gt=0)
    total_timeout_s: float = Field(20.0, gt=0)
    max_redirects: int = Field(3, ge=0, le=10)


class EngineSettings(BaseModel):
    """The embedded engine."""

    model_config = _FROZEN

    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    max_queue: int = Field(64, ge=1)
    max_choices: int = Field(8, ge=1, le=128)
    max_running: int = Field(32, ge=1, description="sequences decoded together in one batched step")
    prefill_budget: int = Field(
        2048,
        ge=1,
        description="prompt tokens prefilled per step (at least one request); an image's placeholders also count "
        "the vision work behind them, as measured",
    )
    vision_cache_mb: int = Field(256, ge=0, description="image embeddings kept for later turns and requests")
    prefix_cache_mb: int = Field(512, ge=0, description="key/value states of earlier prompts kept for reuse")
    image_cache_mb: int = Field(
        256, ge=0, description="decoded images kept for later turns, by file and planned size (per upstream model: encoded ones)"
    )


class Settings(BaseModel):
    """Everything Loupe needs to run, read once at start-up."""

    model_config = _FROZEN

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    currency: str = "USD"
    max_request_bytes: int = Field(50 * 1024 * 1024, ge=1024)
    db: str = Field("sqlite:///loupe.db", description="SQLite path URL or postgresql:// URL")
    redis: str | None = Field(None, description="redis:// URL: rate limits shared by several Loupe processes")
    auth_cache_s: float = Field(
        1.0,
        ge=0,
        le=60,
        description="seconds a resolved API key (or the open state) is reused without a query; admission and "
        "admin calls always check the database",
    )
    models: tuple[ModelSettings, ...] = ()
    fetch: FetchSettings = FetchSettings()
    engine: EngineSettings = EngineSettings()

    @model_validator(mode="after")
    def _unique_ids(self) -> Settings:
        ids = [m.id for m in self.models]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"model ids must be unique; repeated: {', '.join(duplicates)}")
        return self


def model_id_for(checkpoint: str) -> str:
    """The id a `--model` checkpoint is served under: a hub id as is, a local path by its name."""
    path = Path(checkpoint)
    if path.exists():
        return path.resolve().name
    return checkpoint


def load_settings(
    config_file: Path | None = None,
    *,
    models: tuple[str, ...] = (),
    overrides: dict[str, Any] | None = None,
) -> Settings:
    """Build the settings from an optional TOML file, `--model` checkpoints and CLI overrides.

    Raises ConfigError with a readable message when the file is missing or invalid.
    """
    data: dict[str, Any] = {}
    if config_file is not None:
        data = _read_toml(config_file)
    if models:
        data["models"] = [{"id": model_id_for(c), "checkpoint": c} for c in models]
    for key, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(data, key, value)
    if not data.get("models"):
        data["models"] = [{"id": DEFAULT_MODEL, "checkpoint": DEFAULT_MODEL}]
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        where = f" in {config_file}" if config_file else ""
        raise ConfigError(f"invalid configuration{where}: {_describe(exc)}") from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    head, _, rest = key.partition(".")
    if not rest:
        data[head] = value
        return
    child = data.setdefault(head, {})
    _set_dotted(child, rest, value)


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}" if loc else err["msg"])
    return "; ".join(parts)
