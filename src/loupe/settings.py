"""The only place that reads configuration: the TOML file and command-line overrides.

`load_settings` is called once, at the composition root (the CLI), and the resulting frozen
values are handed down. Nothing else in Loupe reads the environment or a config file.
"""

from __future__ import annotations

import difflib
import os
import sys
import tomllib
import typing
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from loupe.errors import ConfigError

DEFAULT_MODEL = "HuggingFaceTB/SmolVLM-256M-Instruct"

_FROZEN = ConfigDict(frozen=True, extra="forbid")


def data_dir() -> Path:
    """Where Loupe keeps its data unless told otherwise, whatever the working directory:
    `$XDG_DATA_HOME/loupe` when that is set, else the platform's per-user data directory."""
    xdg = os.environ.get("XDG_DATA_HOME")
    if xdg:
        return Path(xdg) / "loupe"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "loupe"
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local") / "loupe"
    return Path.home() / ".local" / "share" / "loupe"


def default_database() -> str:
    """The database used when neither `--db` nor the config names one: loupe.db in `data_dir()`."""
    return f"sqlite:///{data_dir() / 'loupe.db'}"


class ImageSettings(BaseModel):
    """Per-model limits on the images of a request."""

    model_config = _FROZEN

    max_images: int = Field(8, ge=0, le=64)
    max_image_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(50_000_000, ge=1)
    max_image_side: int = Field(16_384, ge=1)
    min_image_side: int = Field(1, ge=1)
    auto_detail_token_budget: int = Field(1024, ge=16)


class VideoSettings(BaseModel):
    """Per-model limits on the videos of a request (`video_url` parts; docs/vision-guide.md)."""

    model_config = _FROZEN

    max_videos: int = Field(4, ge=0, le=16, description="videos in one request (0: this model takes none)")
    max_video_tokens: int = Field(32768, ge=1, description="placeholder tokens of a request's videos together")
    max_video_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    max_duration_s: float = Field(600.0, gt=0)
    max_frames: int = Field(256, ge=1, le=768, description="frames sampled from one video; a request may only lower it")
    max_frame_pixels: int = Field(8_847_360, ge=1, description="pixels of one frame as the file declares it (4096 x 2160)")
    max_frame_side: int = Field(8192, ge=1)
    max_fps: float = Field(240.0, gt=0, description="frame rate a file may declare")
    decode_timeout_s: float = Field(60.0, gt=0, description="wall time to decode one video's sampled frames")


class UpstreamOptions(BaseModel):
    """How Loupe talks to an upstream model's replicas."""

    model_config = _FROZEN

    health_interval_s: float = Field(5.0, gt=0)
    connect_timeout_s: float = Field(2.0, gt=0)
    read_timeout_s: float = Field(120.0, gt=0, description="also bounds the wait for the first token")
    max_attempts: int = Field(3, ge=1, description="replicas tried while nothing was sent to the client")
    max_failures: int = Field(2, ge=1, description="consecutive failures before a replica is taken out")
    learn_limits: bool = Field(
        True, description="follow the context and image limits the replicas state in /models (vLLM: max_model_len)"
    )
    api: Literal["auto", "vllm", "openai"] = Field(
        "auto", description="request fields beyond OpenAI's the replicas take; auto: vLLM's where /models says vllm"
    )
    image_format: Literal["bmp", "png"] = Field(
        "bmp", description="how images travel upstream, both lossless: bmp is fast to write and read, png smaller"
    )
    api_key: SecretStr | None = Field(
        None, description="sent to every replica as `Authorization: Bearer` (vLLM's --api-key)"
    )
    api_key_env: str | None = Field(
        None, min_length=1, description="the environment variable that holds api_key, to keep it out of the file"
    )
    ca_file: str | None = Field(
        None, min_length=1, description="PEM file of the certificate authorities https replicas are checked against"
    )

    @model_validator(mode="before")
    @classmethod
    def _key_from_environment(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("api_key_env") is None:
            return data
        if data.get("api_key") is not None:
            raise ValueError("give api_key or api_key_env, not both")
        name = data["api_key_env"]
        key = os.environ.get(name) if isinstance(name, str) else None
        if not key:
            raise ValueError(f"api_key_env names the environment variable {name!r}, which is not set or empty")
        return {**data, "api_key": key}


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
    videos: VideoSettings = VideoSettings()

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
        64, ge=0, description="decoded images kept for later turns, by file and planned size (per upstream model: encoded ones)"
    )
    video_cache_mb: int = Field(256, ge=0, description="sampled video frames kept for later turns, by file and plan")
    image_memory_mb: int = Field(
        128, ge=0, description="decoded images, sampled video frames and pixel values of the requests between "
        "planning and prefill (estimated); more requests wait, a larger one runs alone; 0: unbounded"
    )
    stream_buffer_tokens: int = Field(
        64, ge=1, description="tokens per choice a streaming client may fall behind before its generation pauses"
    )
    stream_stall_timeout_s: float = Field(
        30.0, gt=0, description="a generation paused that long for a client that reads nothing is cancelled"
    )


class ServerSettings(BaseModel):
    """The HTTP server's deadlines and caps: what one slow or idle client may hold."""

    model_config = _FROZEN

    header_timeout_s: float = Field(10.0, gt=0, description="a request's headers must arrive within this (else 408)")
    body_timeout_s: float = Field(60.0, gt=0, description="a request's body must arrive within this after its headers (else 408)")
    keep_alive_s: int = Field(5, ge=1, description="an idle kept-alive connection is closed after this")
    write_timeout_s: float = Field(
        30.0, gt=0, description="a response the client stops reading is dropped (the connection aborted) after this"
    )
    max_connections: int = Field(512, ge=1, description="open connections; requests on more are answered 503")
    body_memory_mb: int = Field(
        64, ge=0, description="request bodies the requests in progress hold at once; more wait unread (0: unbounded)"
    )
    send_buffer_bytes: int = Field(
        65536, ge=0, description="the kernel's send buffer per connection (0: its own sizing); bounds what a client "
        "that stops reading can leave unread"
    )


class BillingSettings(BaseModel):
    """How processes sharing the database notice that one died, and free what it held (docs/billing.md)."""

    model_config = _FROZEN

    heartbeat_s: float = Field(
        5.0, gt=0, le=300, description="seconds between a serving process's heartbeats; each also looks for dead ones"
    )
    dead_after_s: float = Field(
        30.0, gt=0, description="a process whose heartbeat has not moved this long is dead: its reservations are released"
    )
    max_hold_s: float = Field(3600.0, gt=0, description="a reservation older than this is released, whoever holds it")

    @model_validator(mode="after")
    def _several_beats(self) -> BillingSettings:
        if self.dead_after_s < 2 * self.heartbeat_s:
            raise ValueError("billing.dead_after_s must be at least twice billing.heartbeat_s")
        return self


class Settings(BaseModel):
    """Everything Loupe needs to run, read once at start-up."""

    model_config = _FROZEN

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    currency: str = "USD"
    max_request_bytes: int = Field(50 * 1024 * 1024, ge=1024)
    db: str = Field(
        default_factory=default_database,
        description="SQLite path URL or postgresql:// URL; default: loupe.db in Loupe's data directory",
    )
    redis: str | None = Field(None, description="redis:// URL: rate limits shared by several Loupe processes")
    auth_cache_s: float = Field(
        1.0,
        ge=0,
        le=60,
        description="seconds a resolved API key (or the open state) is reused without a query; admission and "
        "admin calls always check the database",
    )
    cors_origins: tuple[str, ...] = Field(
        (), description="origins of web pages allowed to call the API from a browser (CORS), e.g. http://localhost:3000"
    )
    models: tuple[ModelSettings, ...] = ()
    fetch: FetchSettings = FetchSettings()
    engine: EngineSettings = EngineSettings()
    billing: BillingSettings = BillingSettings()
    server: ServerSettings = ServerSettings()

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
        _paths_from(config_file.absolute().parent, data)
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


def _paths_from(folder: Path, data: dict[str, Any]) -> None:
    """Make a config file's relative paths (the `db` SQLite file, local checkpoints, upstreams'
    `ca_file`) relative to its folder, so the file means the same from any working directory.
    Command-line values are left relative to the working directory, as a shell user expects."""
    if isinstance(data.get("db"), str):
        data["db"] = _database_in(folder, data["db"])
    models = data.get("models")
    for model in models if isinstance(models, list) else ():
        if isinstance(model, dict) and isinstance(model.get("checkpoint"), str):
            model["checkpoint"] = _checkpoint_in(folder, model["checkpoint"])
        options = model.get("upstream_options") if isinstance(model, dict) else None
        if isinstance(options, dict) and isinstance(options.get("ca_file"), str):
            options["ca_file"] = str(_path_in(folder, options["ca_file"]))


def _database_in(folder: Path, db: str) -> str:
    """A SQLite file given as a plain path or a `sqlite:///` URL, placed in `folder` if relative."""
    if "://" not in db:
        return db if db == ":memory:" else str(_path_in(folder, db))
    scheme, _, rest = db.partition(":///")
    if scheme.partition("+")[0] != "sqlite" or not rest or rest.startswith(("/", ":memory:")):
        return db  # another database, an absolute path, or memory
    path, mark, query = rest.partition("?")
    return f"{scheme}:///{_path_in(folder, path)}{mark}{query}"


def _checkpoint_in(folder: Path, checkpoint: str) -> str:
    """A checkpoint written as a relative path, or found in `folder`, as a path there; anything
    else (an absolute path, `~/...`, a hub id such as `Qwen/Qwen2-VL-2B-Instruct`) as written."""
    path = Path(checkpoint).expanduser()
    if path.is_absolute():
        return checkpoint
    local = folder / path
    return str(local) if checkpoint.startswith(".") or local.exists() else checkpoint


def _path_in(folder: Path, path: str) -> Path:
    expanded = Path(path).expanduser()
    return expanded if expanded.is_absolute() else folder / expanded


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
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = f"unknown setting{_did_you_mean(err['loc'])}"
        parts.append(f"{loc}: {message}" if loc else message)
    return "; ".join(parts)


def _did_you_mean(loc: tuple[int | str, ...]) -> str:
    """'; did you mean x?' for an unknown key, from the settings known at its place in the file."""
    model: type[BaseModel] = Settings
    for part in loc[:-1]:
        field = model.model_fields.get(str(part)) if isinstance(part, str) else None
        if field is None:
            continue
        inner = [a for a in (field.annotation, *typing.get_args(field.annotation)) if isinstance(a, type)]
        found = [a for a in inner if issubclass(a, BaseModel)]
        if not found:
            return ""
        model = found[0]
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else f"; known here: {', '.join(model.model_fields)}"
