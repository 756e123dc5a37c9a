"""Processors without torchvision: Loupe's video processor, the PIL backend, real token counts."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image
from transformers import Qwen2VLProcessor
from transformers.image_processing_backends import PilBackend

from loupe.engines.local.processor import load_processor
from loupe.engines.local.video_processor import LoupeVideoProcessor
from loupe.errors import InvalidRequest, ModelLoadError
from tests.helpers import PHOTOS

PHOTO = PHOTOS / "extreme_ironing.jpg"


def photo(size: tuple[int, int] | None = None) -> Image.Image:
    with Image.open(PHOTO) as img:
        rgb = img.convert("RGB")
    return rgb if size is None else rgb.resize(size)


@pytest.mark.parametrize("family", ["qwen2-vl", "smolvlm"])
def test_loupe_video_processor_and_pil_backend(
    family: str, tiny_checkpoint: Callable[[str], Path]
) -> None:
    processor = load_processor(str(tiny_checkpoint(family)), family=family)
    assert isinstance(processor.video_processor, LoupeVideoProcessor)
    assert processor.video_processor.family == family
    assert isinstance(processor.image_processor, PilBackend)
    assert processor.chat_template is not None


@pytest.mark.parametrize("family", [None, "qwen2-vl"])
def test_the_video_slot_carries_the_patch_geometry(family: str | None, tiny_checkpoint: Callable[[str], Path]) -> None:
    video = load_processor(str(tiny_checkpoint("qwen2-vl")), family=family).video_processor
    assert (video.merge_size, video.temporal_patch_size, video.patch_size) == (2, 2, 14)


def test_qwen_1024x768_gives_999_image_pads(tiny_checkpoint: Callable[[str], Path]) -> None:
    processor = load_processor(str(tiny_checkpoint("qwen2-vl")))
    prompt = "<|vision_start|><|image_pad|><|vision_end|>Describe."
    out = processor(text=[prompt], images=[photo((1024, 768))], return_tensors="pt")
    # smart_resize: 768x1024 -> 756x1036, 54x74 patches of 14, merged 2x2 -> 27 * 37.
    assert int((out["input_ids"] == processor.image_token_id).sum()) == 999
    assert out["image_grid_thw"].tolist() == [[1, 54, 74]]


def test_smolvlm_photo_gives_64_tokens_per_tile_plus_global(
    tiny_checkpoint: Callable[[str], Path],
) -> None:
    processor = load_processor(str(tiny_checkpoint("smolvlm")))
    image = photo()
    layout = processor.image_processor(images=[image], return_row_col_info=True)
    rows, cols = layout["rows"][0][0], layout["cols"][0][0]
    assert rows * cols > 1
    out = processor(text=["<image>Describe."], images=[image], return_tensors="pt")
    assert int((out["input_ids"] == processor.image_token_id).sum()) == 64 * (rows * cols + 1)


@pytest.mark.parametrize("family", ["qwen2-vl", "smolvlm"])
def test_without_a_family_videos_are_refused_with_a_clear_error(
    family: str, tiny_checkpoint: Callable[[str], Path]
) -> None:
    processor = load_processor(str(tiny_checkpoint(family)))
    frames = [photo((64, 64))] * 2
    with pytest.raises(InvalidRequest, match="does not take video"):
        processor(text=[f"{processor.video_token} Describe."], videos=[frames])


def test_class_comes_from_the_model_type_without_processor_config(
    tiny_checkpoint: Callable[[str], Path], tmp_path: Path
) -> None:
    copy = Path(shutil.copytree(tiny_checkpoint("qwen2-vl"), tmp_path / "qwen"))
    (copy / "processor_config.json").unlink()
    processor = load_processor(str(copy))
    assert isinstance(processor, Qwen2VLProcessor)
    assert isinstance(processor.video_processor, LoupeVideoProcessor)


def test_a_model_type_without_processor_is_a_load_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ModelLoadError, match="llama"):
        load_processor(str(tmp_path))
