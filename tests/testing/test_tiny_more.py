"""Tiny Qwen2.5-VL, Qwen3-VL, GLM-4.1V and Idefics3 checkpoints through Loupe's own load and prompt
path: published geometry, faithful templates, and image tokens equal to the pure counters."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from loupe.domain import Detail, PreparedImage, PromptMessage, Role, TextPart
from loupe.engines.local.loader import LoadedModel, load_model
from loupe.engines.local.prompt import build_prompt
from loupe.models.geometry import FamilyRules
from loupe.models.glm4v import GLM4V_PUBLISHED, Glm4vRules
from loupe.models.idefics3 import IDEFICS3_PUBLISHED, Idefics3Rules
from loupe.models.qwen2_vl import QWEN2_VL_PUBLISHED, QWEN3_VL_PUBLISHED, QwenRules
from loupe.testing.tiny import build_tiny_checkpoint
from loupe.testing.tiny.tokenizer import SpecialTokens
from tests.helpers import PHOTOS
from tests.testing.support import USER_IMAGE_TURN, planned_tokens, read_json

RULES: dict[str, FamilyRules[Any]] = {
    "qwen2.5-vl": QwenRules("qwen2.5-vl", QWEN2_VL_PUBLISHED),
    "qwen3-vl": QwenRules("qwen3-vl", QWEN3_VL_PUBLISHED),
    "qwen3-vl-moe": QwenRules("qwen3-vl", QWEN3_VL_PUBLISHED),
    "glm4v": Glm4vRules("glm4v", GLM4V_PUBLISHED),
    "idefics3": Idefics3Rules("idefics3", IDEFICS3_PUBLISHED),
}
FAMILIES = tuple(RULES)
MOE = "qwen3-vl-moe"  # the same processor, template and tower as qwen3-vl; expert MLPs
FOLLOW_UP = [
    {"role": "assistant", "content": [{"type": "text", "text": "A man ironing."}]},
    {"role": "user", "content": "Why?"},
]

# The published templates' output for USER_IMAGE_TURN + FOLLOW_UP with a generation prompt.
TEMPLATE_OUTPUT = {
    "qwen2.5-vl": (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>What is this?<|im_end|>\n"
        "<|im_start|>assistant\nA man ironing.<|im_end|>\n<|im_start|>user\nWhy?<|im_end|>\n"
        "<|im_start|>assistant\n"
    ),
    "qwen3-vl": (
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>What is this?<|im_end|>\n"
        "<|im_start|>assistant\nA man ironing.<|im_end|>\n<|im_start|>user\nWhy?<|im_end|>\n"
        "<|im_start|>assistant\n"
    ),
    "glm4v": (
        "[gMASK]<sop><|user|>\n<|begin_of_image|><|image|><|end_of_image|>What is this?"
        "<|assistant|>\nA man ironing.<|user|>\nWhy?<|assistant|>\n"
    ),
    "idefics3": (
        "<|begin_of_text|>User:<image>What is this?<end_of_utterance>\n"
        "Assistant: A man ironing.<end_of_utterance>\nUser: Why?<end_of_utterance>\nAssistant:"
    ),
}

TEMPLATE_OUTPUT[MOE] = TEMPLATE_OUTPUT["qwen3-vl"]

# What each family's preprocessor_config.json must hold: the reference checkpoint's geometry.
PUBLISHED_GEOMETRY: dict[str, dict[str, Any]] = {
    "qwen2.5-vl": {"min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "merge_size": 2},
    "qwen3-vl": {
        "size": {"longest_edge": 16777216, "shortest_edge": 65536},
        "patch_size": 16,
        "merge_size": 2,
    },
    "glm4v": {
        "size": {"longest_edge": 9633792, "shortest_edge": 12544},
        "patch_size": 14,
        "merge_size": 2,
        "temporal_patch_size": 2,
    },
    "idefics3": {
        "size": {"longest_edge": 1456},
        "max_image_size": {"longest_edge": 364},
        "resample": Image.Resampling.LANCZOS,
    },
}


PUBLISHED_GEOMETRY[MOE] = PUBLISHED_GEOMETRY["qwen3-vl"]


def module_of(family: str) -> Any:
    name = family.replace("-", "_").replace(".", "_")
    return importlib.import_module(f"loupe.testing.tiny.{name}")


@pytest.fixture(scope="module")
def loaded(tiny_checkpoint: Callable[[str], Path]) -> Callable[[str], LoadedModel]:
    models: dict[str, LoadedModel] = {}

    def get(family: str) -> LoadedModel:
        if family not in models:
            models[family] = load_model(str(tiny_checkpoint(family)), device="cpu")
        return models[family]

    return get


@pytest.mark.parametrize("photo", ["extreme_ironing.jpg", "bus.jpg"])
@pytest.mark.parametrize("family", FAMILIES)
def test_prompt_image_tokens_equal_the_counter_and_the_model_generates(
    family: str,
    photo: str,
    loaded: Callable[[str], LoadedModel],
    tiny_checkpoint: Callable[[str], Path],
) -> None:
    model = loaded(family)
    with Image.open(PHOTOS / photo) as opened:
        pixels = opened.convert("RGB")
    image = PreparedImage(
        pixels=pixels,
        width=pixels.width,
        height=pixels.height,
        original_width=pixels.width,
        original_height=pixels.height,
        detail=Detail.HIGH,
        content_hash=photo,
    )
    message = PromptMessage(role=Role.USER, content=(image, TextPart("What is this?")))
    prompt = build_prompt(model.processor, [message])
    tokenizer = model.processor.tokenizer
    planned = planned_tokens(RULES[family], tiny_checkpoint(family), tokenizer, *pixels.size)
    assert prompt.stats.image_tokens == planned
    assert prompt.stats.prompt_tokens == prompt.inputs["input_ids"].shape[1]
    out = model.model.generate(**prompt.inputs, max_new_tokens=3, do_sample=False)
    assert prompt.stats.prompt_tokens < out.shape[1] <= prompt.stats.prompt_tokens + 3


@pytest.mark.parametrize("family", FAMILIES)
def test_template_matches_the_published_format(
    family: str, loaded: Callable[[str], LoadedModel]
) -> None:
    chat = [*USER_IMAGE_TURN, *FOLLOW_UP]
    processor = loaded(family).processor
    text = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    assert text == TEMPLATE_OUTPUT[family]


def test_glm4v_replays_an_answer_without_its_reasoning(
    loaded: Callable[[str], LoadedModel],
) -> None:
    answer = {"role": "assistant", "content": "<think>A man, a board.</think> Ironing."}
    processor = loaded("glm4v").processor
    text = processor.apply_chat_template([*USER_IMAGE_TURN, answer], tokenize=False)
    assert text.endswith("<|assistant|>\nIroning.")


@pytest.mark.parametrize("family", FAMILIES)
def test_has_the_published_image_geometry_and_the_pil_processor(
    family: str, loaded: Callable[[str], LoadedModel], tiny_checkpoint: Callable[[str], Path]
) -> None:
    path = tiny_checkpoint(family)
    preprocessor = read_json(path / "preprocessor_config.json")
    assert PUBLISHED_GEOMETRY[family].items() <= preprocessor.items()
    assert type(loaded(family).processor.image_processor).__name__.endswith("Pil")
    model_type = read_json(path / "config.json")["model_type"]
    assert model_type == family.replace("-", "_").replace(".", "_")


# The vision towers' keys that decide tokens or must agree with the processor, as published.
PUBLISHED_VISION: dict[str, dict[str, Any]] = {
    "qwen2.5-vl": {"patch_size": 14, "spatial_merge_size": 2, "window_size": 112},
    "qwen3-vl": {"patch_size": 16, "spatial_merge_size": 2, "num_position_embeddings": 2304},
    "glm4v": {"patch_size": 14, "spatial_merge_size": 2, "image_size": 336},
    "idefics3": {"patch_size": 14, "image_size": 364},
}
PUBLISHED_VISION[MOE] = PUBLISHED_VISION["qwen3-vl"]


@pytest.mark.parametrize("family", FAMILIES)
def test_vision_tower_has_the_published_patches(
    family: str, tiny_checkpoint: Callable[[str], Path]
) -> None:
    path = tiny_checkpoint(family)
    config = read_json(path / "config.json")
    assert PUBLISHED_VISION[family].items() <= config["vision_config"].items()
    if family == "idefics3":
        assert config["scale_factor"] == 2
        assert read_json(path / "processor_config.json")["image_seq_len"] == 169


def test_qwen3_vl_moe_routes_each_token_to_some_of_its_experts(
    loaded: Callable[[str], LoadedModel],
) -> None:
    from loupe.testing.tiny.qwen3_vl_moe import EXPERTS, EXPERTS_PER_TOKEN

    model = loaded(MOE).model
    text = model.config.text_config
    assert (text.num_experts, text.num_experts_per_tok) == (EXPERTS, EXPERTS_PER_TOKEN)
    assert EXPERTS_PER_TOKEN < EXPERTS
    layers = model.model.language_model.layers
    assert all(type(layer.mlp).__name__ == "Qwen3VLMoeTextSparseMoeBlock" for layer in layers)


@pytest.mark.parametrize("family", ["qwen3-vl", "glm4v"])
def test_wider_text_models_split_their_rotary_sections(family: str, tmp_path: Path) -> None:
    path = build_tiny_checkpoint(family, tmp_path, hidden_size=256, layers=1)
    model = load_model(str(path), device="cpu")
    with Image.open(PHOTOS / "extreme_ironing.jpg") as opened:
        pixels = opened.convert("RGB").resize((64, 64))
    text = model.processor.apply_chat_template(USER_IMAGE_TURN, add_generation_prompt=True)
    inputs = model.processor(text=[text], images=[pixels], return_tensors="pt")
    out = model.model.generate(**inputs, max_new_tokens=1, do_sample=False)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 1


@pytest.mark.parametrize("family", FAMILIES)
def test_tokenizer_keeps_special_tokens_whole(
    family: str, loaded: Callable[[str], LoadedModel], tiny_checkpoint: Callable[[str], Path]
) -> None:
    tokenizer = loaded(family).processor.tokenizer
    special: SpecialTokens = module_of(family).SPECIAL_TOKENS
    for token in special.tokens:
        ids = tokenizer(f"a{token}b", add_special_tokens=False)["input_ids"]
        assert tokenizer.convert_ids_to_tokens(ids)[1] == token and len(ids) == 3
    config = read_json(tiny_checkpoint(family) / "config.json")
    assert config["text_config"]["vocab_size"] == len(tokenizer)
