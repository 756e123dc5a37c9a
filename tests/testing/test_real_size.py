"""Random-weight checkpoints with published dimensions: the real size, loadable, decodable ids."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors import safe_open

from loupe.engines.local.loader import load_model
from loupe.testing.tiny.real_size import REAL_SIZES, build_real_size_checkpoint
from tests.helpers import PHOTOS
from tests.testing.support import USER_IMAGE_TURN, read_json

# Parameter counts as the model cards publish them (rounded there to these digits).
PUBLISHED = {
    "SmolVLM-256M-Instruct": 256.5e6,
    "SmolVLM-500M-Instruct": 507.5e6,
    "Qwen2-VL-2B-Instruct": 2.21e9,
    "Qwen2.5-VL-3B-Instruct": 3.75e9,
}


@pytest.mark.parametrize("name", sorted(REAL_SIZES))
def test_the_dimensions_give_the_published_parameter_count(name: str) -> None:
    assert REAL_SIZES[name].parameters() == pytest.approx(PUBLISHED[name], rel=0.002)


def test_an_unknown_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="SmolVLM-256M-Instruct"):
        build_real_size_checkpoint("SmolVLM-1T", tmp_path)


@pytest.fixture(scope="module")
def smolvlm_256m(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_real_size_checkpoint("SmolVLM-256M-Instruct", tmp_path_factory.mktemp("smolvlm-256m"))


def test_a_checkpoint_is_written_at_full_size_in_the_published_dtype(smolvlm_256m: Path) -> None:
    config = read_json(smolvlm_256m / "config.json")
    assert config["dtype"] == "bfloat16"
    assert config["text_config"]["hidden_size"] == 576 and config["text_config"]["num_hidden_layers"] == 30
    assert config["vision_config"]["hidden_size"] == 768 and config["vision_config"]["num_hidden_layers"] == 12
    with safe_open(str(smolvlm_256m / "model.safetensors"), "pt") as weights:
        total = sum(torch.Size(weights.get_slice(k).get_shape()).numel() for k in weights.keys())
        head = weights.get_tensor("lm_head.weight")
    assert total == REAL_SIZES["SmolVLM-256M-Instruct"].parameters()
    assert head.dtype == torch.bfloat16 and head.shape == (49280, 576)
    # The head keeps its published size; rows past the tokenizer's ids are zeros, the others not.
    vocab = len(load_model(str(smolvlm_256m), device="cpu").processor.tokenizer)
    assert 1000 < vocab < 49280
    assert not head[vocab:].any() and bool(head[:vocab].abs().sum(-1).min() > 0)


def test_greedy_decoding_stays_within_the_tokenizers_ids(smolvlm_256m: Path) -> None:
    loaded = load_model(str(smolvlm_256m), device="cpu")
    vocab = len(loaded.processor.tokenizer)
    with Image.open(PHOTOS / "bus.jpg") as photo:
        prompt = loaded.processor.apply_chat_template(USER_IMAGE_TURN, add_generation_prompt=True)
        # One tile (detail "low"), so the vision tower runs once.
        image = photo.convert("RGB")
        inputs = loaded.processor(text=[prompt], images=[image], do_image_splitting=False, return_tensors="pt")
    out = loaded.model.generate(**inputs, max_new_tokens=8, do_sample=False)
    new = out[0, inputs["input_ids"].shape[1] :]
    assert len(new) == 8 and int(new.max()) < vocab
