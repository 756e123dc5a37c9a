"""Tiny random-weight checkpoints of real VLM architectures, built offline for tests and bench."""

from __future__ import annotations

import importlib
from pathlib import Path

from loupe.testing.tiny.size import TextSize

__all__ = ["FAMILIES", "build_tiny_checkpoint"]

# Named as in loupe.models' catalogue (qwen3-vl-moe: the qwen3-vl family's mixture-of-experts
# design); each has a module of the same name with "_" for "-" and ".".
FAMILIES: tuple[str, ...] = (
    "qwen2-vl",
    "smolvlm",
    "qwen2.5-vl",
    "qwen3-vl",
    "qwen3-vl-moe",
    "glm4v",
    "idefics3",
    "llava",
    "llava-onevision",
    "gemma3",
    "internvl",
    "mistral3",
    "llama4",
)


def build_tiny_checkpoint(
    family: str, out_dir: Path, *, hidden_size: int | None = None, layers: int | None = None
) -> Path:
    """Build a tiny checkpoint of `family` into `out_dir` and return `out_dir`.

    `hidden_size` and `layers` scale the text model only (see `TextSize` for the head rule);
    the defaults (64, 2) load in about a second. Raises ValueError for an unknown family or a
    size with no valid attention shape.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
    size = TextSize.choose(hidden_size, layers)
    # Imported on demand: each family module pulls in torch and its transformers classes.
    builder = importlib.import_module(f"{__name__}.{family.replace('-', '_').replace('.', '_')}")
    out: Path = builder.build(Path(out_dir), size)
    return out
