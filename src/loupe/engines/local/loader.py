"""Finds a checkpoint (a local path, the Hugging Face cache, or the hub) and loads it with transformers."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import snapshot_download
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError
from transformers import AutoConfig, AutoModelForImageTextToText

from loupe.engines.local.cpu_attention import use_cpu_attention
from loupe.engines.local.cpu_heap import keep_freed_memory
from loupe.engines.local.cpu_linear import packed_linears
from loupe.engines.local.cpu_threads import in_a_thread_of_its_own
from loupe.engines.local.fast_processor import with_fast_images
from loupe.engines.local.precision import Precision, bf16_units, choose_precision
from loupe.engines.local.processor import load_processor
from loupe.errors import ModelLoadError
from loupe.models import MODEL_TYPES

_log = logging.getLogger(__name__)
_WEIGHT_PATTERNS = ("*.json", "*.safetensors", "*.jinja", "*.txt", "*.model", "*.tiktoken")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What counting tokens needs of a checkpoint: its processor and configs, no weights."""

    path: Path
    processor: Any
    model_type: str
    context_size: int
    dtype: str | None = None  # what the weights are saved in, where the config says
    preprocessor_config: dict[str, Any] = field(default_factory=dict)
    processor_config: dict[str, Any] = field(default_factory=dict)
    video_config: dict[str, Any] = field(default_factory=dict)  # the video processor's settings

    @property
    def video_files(self) -> VideoFiles:
        return VideoFiles(self.model_type, self.video_config, self.processor_config)

    def double_newline_tokens(self) -> int:
        """How many tokens this tokenizer makes of a blank line; some families' image prompts hold one."""
        return len(self.processor.tokenizer("\n\n", add_special_tokens=False)["input_ids"])


@dataclass(frozen=True, slots=True)
class VideoFiles:
    """What counting a checkpoint's video tokens needs: its model type and two configs."""

    model_type: str
    video_config: dict[str, Any]
    processor_config: dict[str, Any]


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A checkpoint with its weights on a device, ready for the inference thread."""

    checkpoint: Checkpoint
    model: Any
    device: torch.device
    precision: Precision = Precision(torch.float32, "")

    @property
    def processor(self) -> Any:
        return self.checkpoint.processor


def resolve_checkpoint(checkpoint: str) -> Path:
    """A local directory as is; otherwise the hub snapshot (cached, or downloaded with progress)."""
    path = Path(checkpoint).expanduser()
    if path.is_dir():
        return path.resolve()
    if path.exists() or checkpoint.startswith((".", "/", "~")):
        raise ModelLoadError(f"checkpoint {checkpoint!r} is not a directory of a saved model")
    try:
        return Path(snapshot_download(checkpoint, allow_patterns=list(_WEIGHT_PATTERNS)))
    except RepositoryNotFoundError:
        raise ModelLoadError(f"model {checkpoint!r} does not exist on the Hugging Face hub") from None
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        raise ModelLoadError(
            f"cannot load {checkpoint!r}: it is not in the Hugging Face cache and the hub cannot be "
            f"reached ({type(exc).__name__}). Pass --model PATH of a local checkpoint instead, "
            "for example one made offline with `loupe tiny-model smolvlm ./tiny-smolvlm`."
        ) from None


def pick_device(requested: str) -> torch.device:
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ModelLoadError("device 'cuda' was requested but no CUDA device is available")
        return torch.device("cuda")
    return torch.device("cpu")


def read_checkpoint(checkpoint: str, *, fast: bool = True) -> Checkpoint:
    """Find the checkpoint and load its processor and configs; no weights are read.

    `fast` switches the processor's image step to Loupe's fast image path where the family has
    one (same pixels, less time)."""
    path = resolve_checkpoint(checkpoint)
    preprocessor_config = _read_json(path / "preprocessor_config.json")
    processor_config = _read_json(path / "processor_config.json")
    video_config = video_settings(path, preprocessor_config, processor_config)
    try:
        config = AutoConfig.from_pretrained(path)
        family = MODEL_TYPES.get(str(config.model_type))
        processor = load_processor(str(path), family=family, video_config=video_config)
        if fast:
            processor = with_fast_images(processor, family or "")
    except (OSError, ValueError, KeyError, ImportError) as exc:
        raise ModelLoadError(f"cannot load the checkpoint at {path}: {exc}") from None
    return Checkpoint(
        path=path,
        processor=processor,
        model_type=str(config.model_type),
        context_size=context_size_of(config),
        dtype=_dtype_name(getattr(config, "dtype", None)),
        preprocessor_config=preprocessor_config,
        processor_config=processor_config,
        video_config=video_config,
    )


def read_video_files(checkpoint: str) -> VideoFiles:
    """A checkpoint's configs as video counting needs them, without its processor or weights:
    what an upstream model's video plans come from."""
    path = resolve_checkpoint(checkpoint)
    preprocessor_config = _read_json(path / "preprocessor_config.json")
    processor_config = _read_json(path / "processor_config.json")
    return VideoFiles(
        model_type=str(_read_json(path / "config.json").get("model_type", "")),
        video_config=video_settings(path, preprocessor_config, processor_config),
        processor_config=processor_config,
    )


def video_settings(path: Path, preprocessor: dict[str, Any], processor: dict[str, Any]) -> dict[str, Any]:
    """The video processor's settings where transformers looks for them: nested in
    `processor_config.json`, else `video_preprocessor_config.json`, else the image processor's."""
    nested = processor.get("video_processor")
    if isinstance(nested, dict):
        return nested
    own = _read_json(path / "video_preprocessor_config.json")
    return own or preprocessor


def load_model(checkpoint: str, *, device: str = "auto", dtype: str = "auto") -> LoadedModel:
    """Load processor and weights; every failure becomes a ModelLoadError with a plain message."""
    found = read_checkpoint(checkpoint)
    target = pick_device(device)
    precision = choose_precision(dtype, target, found.dtype, bf16_units() if target.type == "cpu" else None)
    _log.info("%s: computing in %s on %s (%s)", found.path.name, precision.name, target.type, precision.reason)
    # On a thread that ends: the parallel workers the load starts do not outlive it (cpu_threads).
    model = in_a_thread_of_its_own(lambda: _weights(found.path, precision.dtype, target))
    return LoadedModel(checkpoint=found, model=model, device=target, precision=precision)


def _weights(path: Path, dtype: torch.dtype, target: torch.device) -> Any:
    try:
        model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype)
    except (OSError, ValueError, KeyError, ImportError) as exc:
        raise ModelLoadError(f"cannot load the weights at {path}: {exc}") from None
    model.to(target).eval()  # type: ignore[arg-type]
    if target.type == "cpu":
        keep_freed_memory()
        packed_linears(model)
        use_cpu_attention(model)
    return model


def context_size_of(config: Any) -> int:
    """The language model's context window, from whichever sub-config carries it."""
    for cfg in (getattr(config, "text_config", None), config):
        size = getattr(cfg, "max_position_embeddings", None) if cfg is not None else None
        if isinstance(size, int) and size > 0:
            return size
    raise ModelLoadError("the checkpoint's config does not state max_position_embeddings")


def _dtype_name(dtype: object) -> str | None:
    if isinstance(dtype, torch.dtype):
        return str(dtype).removeprefix("torch.")
    return dtype if isinstance(dtype, str) else None


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}") from None
    return data if isinstance(data, dict) else {}
