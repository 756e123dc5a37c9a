"""The fast image path returns the HF image processor's tensors, and drafts only when it may."""

from __future__ import annotations

from dataclasses import replace
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from transformers.models.glm4v.image_processing_pil_glm4v import Glm4vImageProcessorPil
from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil

from loupe.engines.local import fast_images
from loupe.models import glm4v, qwen2_vl
from loupe.models.idefics3 import MAX_IMAGE_SIZE, _cap_longest_edge, _rescale_to_longest_edge, layout
from loupe.testing.tiny import glm4v as tiny_glm4v
from loupe.testing.tiny import idefics3 as tiny_idefics3
from loupe.testing.tiny import qwen2_vl as tiny_qwen2_vl
from loupe.testing.tiny import smolvlm as tiny_smolvlm
from tests.helpers import PHOTOS

PHOTO_NAMES = ("boats.jpg", "bus.jpg", "zidane.jpg", "extreme_ironing.jpg", "llava_example_cmp.png")
ODD_SIZES = ((1, 1), (7, 300), (333, 517), (513, 512), (2900, 41), (28, 28))
TOLERANCE = 1e-5


def processor(cls: type, config: Mapping[str, Any], **changes: Any) -> Any:
    names = ("image_processor_type", "processor_class")
    return cls(**{k: v for k, v in config.items() if k not in names}, **changes)


def photo(name: str) -> Image.Image:
    return Image.open(PHOTOS / name).convert("RGB")


def noise(width: int, height: int) -> Image.Image:
    values = np.random.default_rng(width * 7919 + height).integers(0, 256, (height, width, 3))
    return Image.fromarray(values.astype(np.uint8))


def images() -> list[Image.Image]:
    if not PHOTOS.is_dir():
        pytest.skip(f"the shared photos are not at {PHOTOS}")
    return [photo(n) for n in PHOTO_NAMES] + [noise(w, h) for w, h in ODD_SIZES]


def assert_same(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> None:
    assert set(ours) == set(theirs)
    for key, expected in theirs.items():
        found = ours[key]
        if isinstance(expected, torch.Tensor):
            assert found.shape == expected.shape and found.dtype == expected.dtype, key
            if expected.dtype.is_floating_point:
                assert (found - expected).abs().max().item() <= TOLERANCE, key
            else:
                assert torch.equal(found, expected), key
        else:
            assert found == expected, key


# --- Qwen-VL layouts: images at a size the processor keeps ---------------------------------


def settled(image: Image.Image, settle: Callable[[int, int], tuple[int, int]]) -> Image.Image:
    height, width = settle(image.height, image.width)
    return image if image.size == (width, height) else image.resize((width, height), Image.Resampling.BICUBIC)


QWEN_CASES = {
    "qwen2-vl": (Qwen2VLImageProcessorPil, tiny_qwen2_vl.PREPROCESSOR_CONFIG, {}, qwen2_vl.QWEN2_VL_PUBLISHED),
    "qwen3-vl": (
        Qwen2VLImageProcessorPil,
        tiny_qwen2_vl.PREPROCESSOR_CONFIG,
        {"patch_size": 16, "min_pixels": 65536, "max_pixels": 16777216, "image_mean": [0.5] * 3, "image_std": [0.5] * 3},
        qwen2_vl.QWEN3_VL_PUBLISHED,
    ),
}


@pytest.mark.parametrize("family", sorted(QWEN_CASES))
def test_qwen_layout_equals_the_processor_image_by_image(family: str) -> None:
    cls, config, changes, geometry = QWEN_CASES[family]
    hf = processor(cls, {**config, **changes})
    settings = fast_images.settings_for(family, hf)
    for image in images():
        sized = settled(image, lambda h, w: qwen2_vl.settled_size(h, w, geometry))
        assert_same(fast_images.preprocess([sized], settings), hf([sized], return_tensors="pt"))


def test_qwen_layout_concatenates_a_prompts_images_like_the_processor() -> None:
    hf = processor(Qwen2VLImageProcessorPil, tiny_qwen2_vl.PREPROCESSOR_CONFIG)
    batch = [settled(i, lambda h, w: qwen2_vl.settled_size(h, w, qwen2_vl.QWEN2_VL_PUBLISHED)) for i in images()[:4]]
    assert_same(fast_images.preprocess(batch, fast_images.settings_for("qwen2-vl", hf)), hf(batch, return_tensors="pt"))


def test_glm4v_shares_the_layout() -> None:
    hf = processor(Glm4vImageProcessorPil, tiny_glm4v.PREPROCESSOR_CONFIG)
    settings = fast_images.settings_for("glm4v", hf)
    for image in images()[:3]:
        sized = settled(image, lambda h, w: glm4v.settled_size(h, w, glm4v.GLM4V_PUBLISHED))
        assert_same(fast_images.preprocess([sized], settings), hf([sized], return_tensors="pt"))


def test_qwen_layout_refuses_an_unsettled_size() -> None:
    hf = processor(Qwen2VLImageProcessorPil, tiny_qwen2_vl.PREPROCESSOR_CONFIG)
    with pytest.raises(ValueError, match="multiple of 28"):
        fast_images.preprocess([noise(30, 28)], fast_images.settings_for("qwen2-vl", hf))


# --- Idefics3 / SmolVLM: tiles, global image, padding mask ---------------------------------

TILED_CASES = {
    "smolvlm": (SmolVLMImageProcessorPil, tiny_smolvlm.PREPROCESSOR_CONFIG),
    "idefics3": (Idefics3ImageProcessorPil, tiny_idefics3.PREPROCESSOR_CONFIG),
}
OVERRIDES: dict[str, dict[str, Any]] = {
    "published": {},
    "unsplit": {"do_image_splitting": False},
    "longest-edge-1024": {"size": {"longest_edge": 1024}},
}


def canvas(image: Image.Image, family: str, overrides: Mapping[str, Any]) -> Image.Image:
    """The image at the processor's canvas (or single-tile) geometry, resized as the processor
    does it: longest edge first, then grown to whole tiles."""
    cls, config = TILED_CASES[family]
    settings = fast_images.settings_for(family, processor(cls, config), overrides)
    assert isinstance(settings, fast_images.TileSettings)
    geometry = settings.geometry
    height, width = _first_size(image, geometry)
    once = image.resize((width, height), settings.resample) if (width, height) != image.size else image
    grid = layout(width, height, replace(geometry, do_resize=False))
    return once.resize((grid.width, grid.height), settings.resample) if (grid.width, grid.height) != once.size else once


def _first_size(image: Image.Image, geometry: Any) -> tuple[int, int]:
    if not geometry.do_resize:
        return image.height, image.width
    height, width = _rescale_to_longest_edge(image.height, image.width, geometry.longest_edge)
    return _cap_longest_edge(height, width, MAX_IMAGE_SIZE)


def tiled(
    family: str, image_list: Sequence[Image.Image], overrides: Mapping[str, Any], at_canvas: bool = False
) -> tuple[Any, Any]:
    """Ours and the processor's output; `at_canvas`: the images are at their canvas size, which
    the processor is told to keep (it would otherwise resize them again before cutting tiles)."""
    cls, config = TILED_CASES[family]
    hf = processor(cls, config)
    ours = fast_images.preprocess(image_list, fast_images.settings_for(family, hf, overrides))
    keep = {"do_resize": False} if at_canvas else {}
    theirs = hf([list(image_list)], return_tensors="pt", return_row_col_info=True, **overrides, **keep)
    return ours, theirs


@pytest.mark.parametrize("family", sorted(TILED_CASES))
@pytest.mark.parametrize("name", sorted(OVERRIDES))
def test_tiles_equal_the_processor_given_the_same_canvas(family: str, name: str) -> None:
    for image in images():
        assert_same(*tiled(family, [canvas(image, family, OVERRIDES[name])], OVERRIDES[name], at_canvas=True))


@pytest.mark.parametrize("family", sorted(TILED_CASES))
@pytest.mark.parametrize("name", sorted(OVERRIDES))
def test_from_the_decoded_image_one_resize_keeps_the_processors_geometry(family: str, name: str) -> None:
    for index, image in enumerate(images()):
        ours, theirs = tiled(family, [image], OVERRIDES[name])
        assert (ours["rows"], ours["cols"]) == (theirs["rows"], theirs["cols"])
        assert torch.equal(ours["pixel_attention_mask"], theirs["pixel_attention_mask"])
        assert ours["pixel_values"].shape == theirs["pixel_values"].shape
        if index < len(PHOTO_NAMES):
            # One resampling instead of two: the same photo, a little sharper. Values span [-1, 1]
            # (random noise has no such tolerance: every resampling remakes it).
            assert (ours["pixel_values"] - theirs["pixel_values"]).abs().mean().item() < 0.03


def test_tiles_of_a_prompts_images_follow_each_other() -> None:
    assert_same(*tiled("smolvlm", [canvas(i, "smolvlm", {}) for i in images()[:3]], {}, at_canvas=True))


# --- resizing: torch's bicubic within rounding of Pillow's -----------------------------------


@pytest.mark.parametrize("size", [(1932, 1092), (448, 448), (28, 28), (3024, 1708), (56, 2408)])
def test_resized_is_pillows_bicubic_within_rounding(size: tuple[int, int]) -> None:
    for image in images()[:3]:
        ours = fast_images.resized(image, size)
        assert isinstance(ours, torch.Tensor) and ours.dtype == torch.uint8
        assert tuple(ours.shape) == (3, size[1], size[0])
        pillow = torch.from_numpy(np.array(image.resize(size, Image.Resampling.BICUBIC))).permute(2, 0, 1)
        difference = (ours.to(torch.int16) - pillow.to(torch.int16)).abs()
        assert difference.max().item() <= 2
        assert (difference == 0).float().mean().item() > 0.99


def test_resized_keeps_an_image_already_at_its_size() -> None:
    image = noise(56, 28)
    assert fast_images.resized(image, (56, 28)) is image


def test_resized_takes_a_decoded_array_as_its_image() -> None:
    for image in images()[:3]:
        array = np.array(image)
        for size in ((448, 448), (1932, 1092)):
            ours = fast_images.resized(array, size)
            assert isinstance(ours, torch.Tensor) and torch.equal(ours, fast_images.resized(image, size))
        same = fast_images.resized(array, image.size)
        assert isinstance(same, Image.Image) and np.array_equal(np.asarray(same), array)
    with pytest.raises(ValueError, match="uint8"):
        fast_images.resized(np.zeros((4, 4, 4), dtype=np.uint8), (2, 2))


def test_qwen_layout_takes_resized_tensors_like_images() -> None:
    hf = processor(Qwen2VLImageProcessorPil, tiny_qwen2_vl.PREPROCESSOR_CONFIG)
    settings = fast_images.settings_for("qwen2-vl", hf)
    for image in images()[:4]:
        height, width = qwen2_vl.settled_size(image.height, image.width, qwen2_vl.QWEN2_VL_PUBLISHED)
        tensor = fast_images.resized(image, (width, height))
        if isinstance(tensor, Image.Image):
            continue
        as_image = Image.fromarray(tensor.permute(1, 2, 0).numpy())
        assert_same(fast_images.preprocess([tensor], settings), hf([as_image], return_tensors="pt"))
        assert_same(fast_images.preprocess([tensor], settings), fast_images.preprocess([as_image], settings))


def test_a_family_without_a_fast_path_is_refused() -> None:
    with pytest.raises(ValueError, match="no fast image path"):
        fast_images.settings_for("llava", object())


def test_the_public_surface_is_pinned() -> None:
    assert sorted(fast_images.__all__) == [
        "FAMILIES", "Normalization", "PixtralPatching", "QWEN_LAYOUT", "QwenPatching", "TileSettings", "grids",
        "preprocess", "resized", "settings_for",
    ]
