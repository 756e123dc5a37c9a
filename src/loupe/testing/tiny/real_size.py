"""Random-weight checkpoints with the published dimensions of real models, built offline.

The tiny checkpoints are small on purpose (tests load them in a second), which makes their cost
per token mostly Python. These have every dimension of the published model: vocabulary, text
and vision towers, connector; so a benchmark, or a user sizing a machine, pays the real compute
and memory. The tokenizer, chat template and image processing are the tiny family's (the
published image geometry), and the weights are written in the dtype the published checkpoint
uses. The tokenizer knows about a thousand ids; the output embedding keeps its published size,
with zeros from that id on, so greedy decoding never picks an id the tokenizer cannot decode.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForImageTextToText, PretrainedConfig

from loupe.testing.tiny.checkpoint import Parts, save_checkpoint
from loupe.testing.tiny.size import TextSize

__all__ = ["REAL_SIZES", "RealSize", "build_real_size_checkpoint"]


@dataclass(frozen=True, slots=True)
class RealSize:
    """A published model's dimensions, under the names its config.json uses."""

    family: str  # the tiny family whose tokenizer, template and processor it takes
    text: dict[str, Any]
    vision: dict[str, Any]
    dtype: torch.dtype = torch.bfloat16

    def parts(self) -> Parts:
        """What the checkpoint is written from: the tiny family's, with these dimensions."""
        family = importlib.import_module(f"loupe.testing.tiny.{self.family.replace('-', '_').replace('.', '_')}")
        parts: Parts = family.parts(TextSize.choose())
        return parts._replace(config=_resized(parts.config, self.text, self.vision))

    def parameters(self) -> int:
        """The parameter count, from the dimensions alone (no weights are made)."""
        with torch.device("meta"):
            model = AutoModelForImageTextToText.from_config(self.parts().config)  # type: ignore[no-untyped-call]
        return sum(p.numel() for p in model.parameters())


_SMOLLM2 = {"rms_norm_eps": 1e-5, "rope_parameters": {"rope_type": "default", "rope_theta": 100_000.0}}
_SIGLIP_B16_512 = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "image_size": 512,
    "patch_size": 16,
}
_QWEN2_VL_TOWER = {"depth": 32, "embed_dim": 1280, "num_heads": 16, "mlp_ratio": 4}
_QWEN2_5_VL_TOWER = {
    "depth": 32,
    "hidden_size": 1280,
    "intermediate_size": 3420,
    "num_heads": 16,
    "fullatt_block_indexes": [7, 15, 23, 31],
}
_QWEN_ROPE = {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [16, 24, 24]}


def _qwen_text(hidden: int, layers: int, heads: int, intermediate: int) -> dict[str, Any]:
    return {
        "vocab_size": 151936,
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": 2,
        "max_window_layers": layers,
        "rms_norm_eps": 1e-6,
        "rope_parameters": _QWEN_ROPE,
    }


# Published names (as on the Hugging Face hub, without the organisation) and their dimensions.
REAL_SIZES: dict[str, RealSize] = {
    "SmolVLM-256M-Instruct": RealSize(
        family="smolvlm",
        text={
            **_SMOLLM2,
            "vocab_size": 49280,
            "hidden_size": 576,
            "intermediate_size": 1536,
            "num_hidden_layers": 30,
            "num_attention_heads": 9,
            "num_key_value_heads": 3,
        },
        vision=_SIGLIP_B16_512,
    ),
    "SmolVLM-500M-Instruct": RealSize(
        family="smolvlm",
        text={
            **_SMOLLM2,
            "vocab_size": 49280,
            "hidden_size": 960,
            "intermediate_size": 2560,
            "num_hidden_layers": 32,
            "num_attention_heads": 15,
            "num_key_value_heads": 5,
        },
        vision=_SIGLIP_B16_512,
    ),
    "Qwen2-VL-2B-Instruct": RealSize(
        family="qwen2-vl",
        text=_qwen_text(1536, 28, 12, 8960),
        vision={**_QWEN2_VL_TOWER, "hidden_size": 1536},
    ),
    "Qwen2.5-VL-3B-Instruct": RealSize(
        family="qwen2.5-vl",
        text=_qwen_text(2048, 36, 16, 11008),
        vision={**_QWEN2_5_VL_TOWER, "out_hidden_size": 2048},
    ),
}


def build_real_size_checkpoint(name: str, out_dir: Path) -> Path:
    """Write a random-weight checkpoint with `name`'s published dimensions into `out_dir`.

    Deterministic for equal arguments. Needs memory for the weights once (in the published
    dtype: 0.5 GB for SmolVLM-256M, 4.4 GB for Qwen2-VL-2B, 7.5 GB for Qwen2.5-VL-3B). Raises
    ValueError for an unknown name."""
    spec = REAL_SIZES.get(name)
    if spec is None:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(REAL_SIZES)}")
    parts = spec.parts()
    return save_checkpoint(Path(out_dir), *parts, dtype=spec.dtype, vocab_rows=len(parts.tokenizer))


# Fields derived from the dimensions when a config is made: dropped so they are derived again.
_DERIVED = ("layer_types", "head_dim")


def _resized(config: PretrainedConfig, text: dict[str, Any], vision: dict[str, Any]) -> PretrainedConfig:
    data = config.to_dict()
    for part, fields in (("text_config", text), ("vision_config", vision)):
        kept = {k: v for k, v in data[part].items() if k not in _DERIVED}
        data[part] = {**kept, **fields}
    resized: PretrainedConfig = type(config).from_dict(data)
    return resized
