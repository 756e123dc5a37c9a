"""What every tiny checkpoint writes: seeded random weights, tokenizer, generation config, JSONs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForImageTextToText,
    GenerationConfig,
    PretrainedConfig,
    PreTrainedTokenizerFast,
)

SEED = 0


def save_checkpoint(
    out_dir: Path,
    config: PretrainedConfig,
    tokenizer: PreTrainedTokenizerFast,
    generation: GenerationConfig,
    json_files: dict[str, dict[str, Any]],
) -> Path:
    """Write seeded random weights, tokenizer (with its chat template), generation config and JSONs.

    The seed is applied inside a forked RNG, so the caller's torch random state is untouched and
    two builds with equal arguments write identical tensors.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = AutoModelForImageTextToText.from_config(config)
    model.generation_config = generation
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    for name, content in json_files.items():
        (out_dir / name).write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
    return out_dir


def token_id(tokenizer: PreTrainedTokenizerFast, token: str) -> int:
    """The single id of a special token; a missing one is a bug in the family's token list."""
    found = tokenizer.convert_tokens_to_ids(token)
    assert isinstance(found, int) and tokenizer.convert_ids_to_tokens(found) == token, token
    return found
