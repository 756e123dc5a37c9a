"""Tiny checkpoints keep the published weight layout, which vLLM loads by name, and every weight
loads back into transformers' model with nothing missing or left over."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from safetensors import safe_open
from transformers import AutoModelForImageTextToText

from loupe.testing.tiny import FAMILIES


def weight_names(path: Path) -> list[str]:
    with safe_open(str(path / "model.safetensors"), "pt") as weights:
        return list(weights.keys())


@pytest.mark.parametrize("family", ["llava", "llava-onevision", "gemma3"])
def test_clip_and_siglip_towers_keep_their_vision_model_level(
    family: str, tiny_checkpoint: Callable[[str], Path]
) -> None:
    tower = [name for name in weight_names(tiny_checkpoint(family)) if name.startswith("vision_tower.")]
    assert tower and all(name.startswith("vision_tower.vision_model.") for name in tower)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_weight_loads_back(family: str, tiny_checkpoint: Callable[[str], Path]) -> None:
    _, info = AutoModelForImageTextToText.from_pretrained(tiny_checkpoint(family), output_loading_info=True)
    assert {kind: names for kind, names in info.items() if names} == {}
