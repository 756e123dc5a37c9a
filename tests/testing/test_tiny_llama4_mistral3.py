"""Tiny Llama 4 and Mistral 3 checkpoints: published geometry, templates and BOS, the processor
loaded without torchvision, a photo through the engine's prompt builder counted as planned."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from transformers import AutoTokenizer

from loupe.domain import PromptMessage, Role, TextPart
from loupe.engines.local.loader import load_model
from loupe.engines.local.prompt import build_prompt
from loupe.models.llama4 import Llama4Rules
from loupe.models.mistral3 import Mistral3Rules
from tests.helpers import PHOTOS
from tests.testing.support import USER_IMAGE_TURN, planned_tokens, read_json
from tests.testing.test_tiny_more2 import prepared

RULES: dict[str, Any] = {"llama4": Llama4Rules(), "mistral3": Mistral3Rules()}
# 570 x 380 at detail high: a 2 x 2 canvas and the global tile (3 + 144 + 4 x 145); Mistral 3:
# 588 x 392, 14 rows of 21 [IMG] and a break (the last an end).
PHOTO_TOKENS = {"llama4": 727, "mistral3": 308}
FOLLOW_UP = [
    {"role": "assistant", "content": [{"type": "text", "text": "A man ironing."}]},
    {"role": "user", "content": "Why?"},
]
TEMPLATE_OUTPUT = {
    "llama4": (
        "<|begin_of_text|><|header_start|>system<|header_end|>\n\nBe brief.<|eot|>"
        "<|header_start|>user<|header_end|>\n\n<|image|>What is this?<|eot|>"
        "<|header_start|>assistant<|header_end|>\n\nA man ironing.<|eot|>"
        "<|header_start|>user<|header_end|>\n\nWhy?<|eot|><|header_start|>assistant<|header_end|>\n\n"
    ),
    "mistral3": (
        "<s>[SYSTEM_PROMPT]Be brief.[/SYSTEM_PROMPT][INST][IMG]What is this?[/INST]"
        "A man ironing.</s>[INST]Why?[/INST]"
    ),
}
PUBLISHED_GEOMETRY: dict[str, dict[str, Any]] = {
    "llama4": {"size": {"height": 336, "width": 336}, "max_patches": 16, "resample": 2},
    "mistral3": {"size": {"longest_edge": 1540}, "patch_size": 14, "resample": 3},
}
PUBLISHED_PROCESSOR: dict[str, dict[str, Any]] = {
    "llama4": {"patch_size": 14, "pixel_shuffle_ratio": 0.5},
    "mistral3": {"patch_size": 14, "spatial_merge_size": 2, "image_token": "[IMG]"},
}
PUBLISHED_VISION: dict[str, dict[str, Any]] = {
    "llama4": {"image_size": 336, "patch_size": 14, "pixel_shuffle_ratio": 0.5},
    "mistral3": {"image_size": 1540, "patch_size": 14},
}


@pytest.mark.parametrize("family", RULES)
def test_a_photo_goes_through_the_engine_and_counts_as_planned(
    family: str, tiny_checkpoint: Callable[[str], Path]
) -> None:
    path = tiny_checkpoint(family)
    loaded = load_model(str(path), device="cpu")
    image = prepared(PHOTOS / "extreme_ironing.jpg")
    prompt = build_prompt(loaded.processor, [PromptMessage(Role.USER, (image, TextPart("Describe.")))])
    planned = planned_tokens(RULES[family], path, loaded.processor.tokenizer, image.width, image.height)
    assert prompt.stats.image_tokens == planned == PHOTO_TOKENS[family]
    inputs = {k: v.to(loaded.model.dtype) if v.is_floating_point() else v for k, v in prompt.inputs.items()}
    out = loaded.model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert prompt.stats.prompt_tokens < out.shape[1] <= prompt.stats.prompt_tokens + 3


@pytest.mark.parametrize("family", RULES)
def test_template_and_bos_match_the_published_format(
    family: str, tiny_checkpoint: Callable[[str], Path]
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint(family))
    chat = [{"role": "system", "content": "Be brief."}, *USER_IMAGE_TURN, *FOLLOW_UP]
    text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    assert text == TEMPLATE_OUTPUT[family]
    # The published tokenizers add a BOS of their own, which the template also writes.
    ids = tokenizer("Hi")["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids)[0] == tokenizer.bos_token


def test_mistral3_writes_its_default_system_prompt(tiny_checkpoint: Callable[[str], Path]) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint("mistral3"))
    text = tokenizer.apply_chat_template(USER_IMAGE_TURN, tokenize=False)
    assert text.startswith("<s>[SYSTEM_PROMPT]You are Mistral Small 3, a Large Language Model")


@pytest.mark.parametrize("family", RULES)
def test_published_geometry_and_processor_without_torchvision(
    family: str, tiny_checkpoint: Callable[[str], Path]
) -> None:
    path = tiny_checkpoint(family)
    assert PUBLISHED_GEOMETRY[family].items() <= read_json(path / "preprocessor_config.json").items()
    assert PUBLISHED_PROCESSOR[family].items() <= read_json(path / "processor_config.json").items()
    config = read_json(path / "config.json")
    assert config["model_type"] == family
    assert PUBLISHED_VISION[family].items() <= config["vision_config"].items()
    processor = load_model(str(path), device="cpu").processor
    names = {"llama4": ("Llama4Processor", "Llama4ImageProcessorTorch"),
             "mistral3": ("PixtralProcessor", "PixtralImageProcessorPil")}  # fmt: skip
    assert (type(processor).__name__, type(processor.image_processor).__name__) == names[family]


def test_llama4_text_model_has_experts_and_the_published_attention_pattern(
    tiny_checkpoint: Callable[[str], Path],
) -> None:
    text = read_json(tiny_checkpoint("llama4") / "config.json")["text_config"]
    assert text["layer_types"] == ["chunked_attention", "full_attention"]
    assert text["no_rope_layers"] == [1, 0] and text["attention_chunk_size"] == 8192
    assert text["moe_layers"] == [1] and text["num_local_experts"] > text["num_experts_per_tok"]
    assert text["attn_temperature_tuning"] and text["use_qk_norm"]
