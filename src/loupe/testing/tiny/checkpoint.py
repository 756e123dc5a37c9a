"""What every tiny checkpoint writes: seeded random weights, tokenizer, generation config, JSONs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, NamedTuple

import torch
from tokenizers import processors
from safetensors.torch import load_file, save_file
from transformers import (
    AutoModelForImageTextToText,
    GenerationConfig,
    PretrainedConfig,
    PreTrainedTokenizerFast,
)

from loupe.testing.tiny.size import TextSize
from loupe.testing.tiny.tokenizer import SpecialTokens, train_tokenizer, with_named_tokens

SEED = 0

# Vision towers that transformers 5 saves without their `vision_model.` level, which published
# checkpoints keep (llava-hf, google/gemma-3, llava-onevision-hf). transformers loads either
# layout; vLLM, which loads weights by name, only the published one.
_NESTED_TOWERS = ("clip_vision_model", "siglip_vision_model")
_TOWER_KEY = re.compile(r"^vision_tower\.(?!vision_model\.)")


class Parts(NamedTuple):
    """Everything a family's builder writes, in `save_checkpoint`'s argument order."""

    config: PretrainedConfig
    tokenizer: PreTrainedTokenizerFast
    generation: GenerationConfig
    preprocessor: dict[str, Any]
    processor: dict[str, Any]


def chat_tokenizer(
    special: SpecialTokens, template: str, named: dict[str, str] | None = None
) -> tuple[PreTrainedTokenizerFast, dict[str, int]]:
    """The family's trained tokenizer with its chat template (and `named` tokens reachable by
    name), and the id of each of its special tokens."""
    tokenizer = train_tokenizer(special)
    if named is not None:
        tokenizer = with_named_tokens(tokenizer, named)
    tokenizer.chat_template = template
    return tokenizer, {token: token_id(tokenizer, token) for token in special.tokens}


def text_dims(vocab_size: int, size: TextSize) -> dict[str, Any]:
    """The text-model sizes every tiny config takes, under the names all of them use."""
    return {
        "vocab_size": vocab_size,
        "hidden_size": size.hidden_size,
        "intermediate_size": size.intermediate_size,
        "num_hidden_layers": size.layers,
        "num_attention_heads": size.heads,
        "num_key_value_heads": size.kv_heads,
    }


def tower_dims() -> dict[str, Any]:
    """The fixed small ViT (CLIP, SigLIP, Idefics3, InternViT) under the tiny checkpoints."""
    return {
        "hidden_size": 32,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
    }


def merger_tower_dims(size: TextSize, patch_size: int) -> dict[str, Any]:
    """The fixed small tower that merges 2 x 2 patches of two frames (Qwen2.5-VL, Qwen3-VL,
    GLM-4.1V), projecting into the text model's width."""
    return {
        "depth": 2,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_heads": 2,
        "out_hidden_size": size.hidden_size,
        "patch_size": patch_size,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    }


def save_checkpoint(
    out_dir: Path,
    config: PretrainedConfig,
    tokenizer: PreTrainedTokenizerFast,
    generation: GenerationConfig,
    preprocessor: dict[str, Any],
    processor: dict[str, Any],
    *,
    dtype: torch.dtype = torch.float32,
    vocab_rows: int | None = None,
) -> Path:
    """Write seeded random weights, tokenizer (with its chat template), generation config, and
    `preprocessor_config.json` and `processor_config.json`.

    The seed is applied inside a forked RNG, so the caller's torch random state is untouched and
    two builds with equal arguments write identical tensors. The weights are made and written in
    `dtype`. With `vocab_rows`, the output embedding rows from that id on are zeros: a model
    whose vocabulary is larger than its tokenizer's then never prefers an id the tokenizer lacks
    (a zero logit is below the largest of the real ones, which a random model spreads around 0).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = AutoModelForImageTextToText.from_config(config, dtype=dtype)  # type: ignore[no-untyped-call]
    if vocab_rows is not None:
        with torch.no_grad():
            model.get_output_embeddings().weight[vocab_rows:].zero_()
    model.generation_config = generation
    model.save_pretrained(out_dir)
    if getattr(getattr(config, "vision_config", None), "model_type", None) in _NESTED_TOWERS:
        _publish_tower_layout(out_dir / "model.safetensors")
    tokenizer.save_pretrained(out_dir)
    for name, content in (("preprocessor", preprocessor), ("processor", processor)):
        path = out_dir / f"{name}_config.json"
        path.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
    return out_dir


def _publish_tower_layout(weights: Path) -> None:
    """Rename `vision_tower.X` to `vision_tower.vision_model.X`, the published layout."""
    tensors = load_file(weights)
    renamed = {_TOWER_KEY.sub("vision_tower.vision_model.", name): tensor for name, tensor in tensors.items()}
    save_file(renamed, weights, metadata={"format": "pt"})


def token_id(tokenizer: PreTrainedTokenizerFast, token: str) -> int:
    """The single id of a special token; a missing one is a bug in the family's token list."""
    found = tokenizer.convert_tokens_to_ids(token)
    assert isinstance(found, int) and tokenizer.convert_ids_to_tokens(found) == token, token
    return found


def prepend_bos(tokenizer: PreTrainedTokenizerFast, bos: str) -> None:
    """Start every encoding with `bos`, as the published Llama, Gemma and Mistral tokenizers do
    (whether or not the chat template writes one too)."""
    tokenizer.backend_tokenizer.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single=f"{bos} $A",
                pair=f"{bos} $A {bos} $B",
                special_tokens=[(bos, token_id(tokenizer, bos))],
            ),
        ]
    )
