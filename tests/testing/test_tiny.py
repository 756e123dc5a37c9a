"""The tiny checkpoint builder: loadable, published geometry, faithful templates, deterministic."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText, AutoTokenizer

from loupe.engines.local.processor import load_processor
from loupe.testing.tiny import FAMILIES, build_tiny_checkpoint
from loupe.testing.tiny.gemma3 import SPECIAL_TOKENS as GEMMA3_SPECIAL
from loupe.testing.tiny.internvl import SPECIAL_TOKENS as INTERNVL_SPECIAL
from loupe.testing.tiny.llava import SPECIAL_TOKENS as LLAVA_SPECIAL
from loupe.testing.tiny.llava_onevision import SPECIAL_TOKENS as ONEVISION_SPECIAL
from loupe.testing.tiny.qwen2_vl import SPECIAL_TOKENS as QWEN_SPECIAL
from loupe.testing.tiny.size import TextSize
from loupe.testing.tiny.smolvlm import SPECIAL_TOKENS as SMOL_SPECIAL
from tests.helpers import PHOTOS
from tests.testing.support import USER_IMAGE_TURN, read_json

PHOTO = PHOTOS / "extreme_ironing.jpg"
SPECIAL = {
    "qwen2-vl": QWEN_SPECIAL,
    "smolvlm": SMOL_SPECIAL,
    "llava": LLAVA_SPECIAL,
    "llava-onevision": ONEVISION_SPECIAL,
    "gemma3": GEMMA3_SPECIAL,
    "internvl": INTERNVL_SPECIAL,
}


def config_of(path: Path) -> dict[str, Any]:
    return read_json(path / "config.json")


def generate(path: Path, image: Image.Image) -> None:
    processor = load_processor(str(path))
    model = AutoModelForImageTextToText.from_pretrained(path)
    prompt = processor.apply_chat_template(USER_IMAGE_TURN, add_generation_prompt=True)
    inputs = processor(text=[prompt], images=[image], return_tensors="pt")
    # Llama 4's processor makes bfloat16 pixels, which a caller casts to the model's dtype.
    inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    out = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    prompt_len = inputs["input_ids"].shape[1]
    assert prompt_len < out.shape[1] <= prompt_len + 5


@pytest.mark.parametrize("family", FAMILIES)
def test_builds_loads_and_generates_from_a_photo(
    family: str, tiny_checkpoint: Callable[[str], Path]
) -> None:
    with Image.open(PHOTO) as photo:
        generate(tiny_checkpoint(family), photo.convert("RGB"))


def test_qwen_generates_from_a_large_image(tiny_checkpoint: Callable[[str], Path]) -> None:
    with Image.open(PHOTO) as photo:
        generate(tiny_checkpoint("qwen2-vl"), photo.convert("RGB").resize((1024, 768)))


def test_qwen_has_the_published_vision_geometry(tiny_checkpoint: Callable[[str], Path]) -> None:
    path = tiny_checkpoint("qwen2-vl")
    config = config_of(path)
    vision, text = config["vision_config"], config["text_config"]
    assert (vision["patch_size"], vision["spatial_merge_size"], vision["temporal_patch_size"]) == (
        14,
        2,
        2,
    )
    head_dim = text["hidden_size"] // text["num_attention_heads"]
    assert sum(text["rope_parameters"]["mrope_section"]) == head_dim // 2
    assert vision["hidden_size"] == text["hidden_size"]
    pre = read_json(path / "preprocessor_config.json")
    assert (pre["min_pixels"], pre["max_pixels"], pre["merge_size"]) == (3136, 12845056, 2)


def test_smolvlm_has_the_published_vision_geometry(tiny_checkpoint: Callable[[str], Path]) -> None:
    path = tiny_checkpoint("smolvlm")
    config = config_of(path)
    vision = config["vision_config"]
    assert (vision["image_size"], vision["patch_size"], config["scale_factor"]) == (512, 16, 4)
    seq_len = read_json(path / "processor_config.json")["image_seq_len"]
    assert seq_len == (512 // 16) ** 2 // 4**2 == 64
    pre = read_json(path / "preprocessor_config.json")
    assert pre["size"] == {"longest_edge": 2048}
    assert pre["max_image_size"] == {"longest_edge": 512}
    assert pre["resample"] == Image.Resampling.LANCZOS


@pytest.mark.parametrize("family", sorted(SPECIAL))
def test_tokenizer_round_trips_and_keeps_special_tokens_whole(
    family: str, tiny_checkpoint: Callable[[str], Path]
) -> None:
    path = tiny_checkpoint(family)
    tokenizer = AutoTokenizer.from_pretrained(path)
    text = "Describe the photo: 3 people, 1 taxi — naïve café 🙂!"
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text
    for token in SPECIAL[family].tokens:
        ids = tokenizer(f"a{token}b", add_special_tokens=False)["input_ids"]
        assert tokenizer.convert_ids_to_tokens(ids)[1] == token and len(ids) == 3
        assert token in tokenizer.all_special_tokens
    assert config_of(path)["text_config"]["vocab_size"] == len(tokenizer)


def test_qwen_template_matches_the_published_format(tiny_checkpoint: Callable[[str], Path]) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint("qwen2-vl"))
    prompt = tokenizer.apply_chat_template(
        USER_IMAGE_TURN, tokenize=False, add_generation_prompt=True
    )
    assert prompt == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>What is this?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    chat = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": [{"type": "text", "text": "Hello"}]},
    ]
    assert tokenizer.apply_chat_template(chat, tokenize=False) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello<|im_end|>\n"
    )


def test_smolvlm_template_matches_the_published_format(
    tiny_checkpoint: Callable[[str], Path],
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint("smolvlm"))
    chat = [
        *USER_IMAGE_TURN,
        {"role": "assistant", "content": [{"type": "text", "text": "A man ironing."}]},
        {"role": "user", "content": [{"type": "text", "text": "Why?"}]},
    ]
    assert tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) == (
        "<|im_start|>User:<image>What is this?<end_of_utterance>\n"
        "Assistant: A man ironing.<end_of_utterance>\nUser: Why?<end_of_utterance>\nAssistant:"
    )


def test_same_arguments_give_identical_weights(tmp_path: Path) -> None:
    first = build_tiny_checkpoint("smolvlm", tmp_path / "a", hidden_size=128, layers=1)
    second = build_tiny_checkpoint("smolvlm", tmp_path / "b", hidden_size=128, layers=1)
    a, b = load_file(first / "model.safetensors"), load_file(second / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[name], b[name]) for name in a)
    assert (first / "tokenizer.json").read_bytes() == (second / "tokenizer.json").read_bytes()


def test_size_options_scale_the_text_model(tmp_path: Path) -> None:
    path = build_tiny_checkpoint("qwen2-vl", tmp_path, hidden_size=512, layers=3)
    text = config_of(path)["text_config"]
    shape = (text["hidden_size"], text["num_hidden_layers"], text["num_attention_heads"])
    assert shape == (512, 3, 8)
    assert sum(text["rope_parameters"]["mrope_section"]) == 512 // 8 // 2


@pytest.mark.parametrize(("hidden", "layers"), [(100, 2), (0, 2), (64, 0)])
def test_sizes_without_a_valid_attention_shape_are_refused(hidden: int, layers: int) -> None:
    with pytest.raises(ValueError):
        TextSize.choose(hidden, layers)


def test_unknown_family_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="qwen2-vl"):
        build_tiny_checkpoint("no-such-family", tmp_path)
