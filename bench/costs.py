"""What a request costs a model, from its dimensions: prefill FLOPs and the bytes a decode step reads.

Counted on the model built on the meta device (no weights): every linear or convolution weight
multiplies each row that passes it once, 2 FLOPs per weight and row. Rows are the image patches
in the vision tower, the image tokens in the connector (SmolVLM's, or Qwen2-VL's merger), the
prompt's tokens in the language model, and one row in the head (only the last position's logits
are computed). Attention adds 4 FLOPs per head dimension for every pair of positions it relates:
all pairs of an image's patches in the tower, half the pairs of the prompt (causal) in the text.
A decode step reads every weight of the language model and its head once; the input embedding
is only looked up (a row per token), unless the head shares it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForImageTextToText

__all__ = ["ModelCosts", "costs_of"]

_VISION = ("vision", "visual")
_CONNECTOR = ("connector", "merger", "multi_modal_projector")


@dataclass(frozen=True, slots=True)
class ModelCosts:
    parameters: int
    vision_weights: int  # weights of the tower each patch passes
    connector_weights: int  # weights each image token passes on its way into the text model
    text_weights: int  # weights of the language model's layers each prompt token passes
    head_weights: int
    decode_parameters: int  # what a decode step reads
    vision_layers: int
    vision_width: int
    text_layers: int
    text_width: int

    def prefill_flops(self, prompt_tokens: int, images: int, patches: int, image_tokens: int) -> float:
        """FLOPs of one request's prefill: `images` images of `patches` patches each, which
        become `image_tokens` tokens in all, in a prompt of `prompt_tokens` tokens."""
        return self.vision_flops(images, patches, image_tokens) + self.text_flops(prompt_tokens)

    def vision_flops(self, images: int, patches: int, image_tokens: int) -> float:
        """The tower and the connector, on `images` images of `patches` patches each."""
        linear = 2 * (self.vision_weights * patches * images + self.connector_weights * image_tokens)
        return float(linear + 4 * self.vision_layers * self.vision_width * patches**2 * images)

    def text_flops(self, prompt_tokens: int) -> float:
        """The language model on a prompt, and the head on its last position."""
        linear = 2 * (self.text_weights * prompt_tokens + self.head_weights)
        return float(linear + 2 * self.text_layers * self.text_width * prompt_tokens**2)

    def decode_bytes(self, dtype: str) -> int:
        return self.decode_parameters * (2 if dtype in ("bfloat16", "float16") else 4)


def costs_of(checkpoint: Path) -> ModelCosts:
    config = AutoConfig.from_pretrained(checkpoint)
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config)  # type: ignore[no-untyped-call]
    sums = {"vision": 0, "connector": 0, "text": 0}
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.Conv3d)) and module is not model.lm_head:
            sums[_part(name)] += module.weight.numel()
    head = model.lm_head.weight
    embedding = model.get_input_embeddings().weight
    text_model = model.model.language_model if hasattr(model.model, "language_model") else model.model.text_model
    decode = sum(p.numel() for p in text_model.parameters()) - embedding.numel() + head.numel()
    vision, text = config.vision_config, config.get_text_config()
    return ModelCosts(
        parameters=sum(p.numel() for p in model.parameters()),
        vision_weights=sums["vision"],
        connector_weights=sums["connector"],
        text_weights=sums["text"],
        head_weights=head.numel(),
        decode_parameters=decode,
        vision_layers=_first(vision, "num_hidden_layers", "depth"),
        vision_width=_first(vision, "embed_dim", "hidden_size"),
        text_layers=text.num_hidden_layers,
        text_width=text.hidden_size,
    )


def _part(name: str) -> str:
    if any(word in name for word in _CONNECTOR):
        return "connector"
    return "vision" if any(word in name for word in _VISION) else "text"


def _first(config: Any, *names: str) -> int:
    for name in names:
        if hasattr(config, name):
            return int(getattr(config, name))
    raise AttributeError(f"{type(config).__name__} has none of {names}")
