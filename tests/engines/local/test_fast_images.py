"""The fast image path returns the HF image processor's tensors, and drafts only when it may."""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image, JpegImagePlugin
from transformers.models.glm4v.image_processing_pil_glm4v import Glm4vImageProcessorPil
from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil

from loupe.engines.local import fast_images
from loupe.models import glm4v, qwen2_vl
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


def tiled(family: str, image_list: Sequence[Image.Image], overrides: Mapping[str, Any]) -> tuple[Any, Any]:
    cls, config = TILED_CASES[family]
    hf = processor(cls, config)
    ours = fast_images.preprocess(image_list, fast_images.settings_for(family, hf, overrides))
    theirs = hf([list(image_list)], return_tensors="pt", return_row_col_info=True, **overrides)
    return ours, theirs


@pytest.mark.parametrize("family", sorted(TILED_CASES))
@pytest.mark.parametrize("name", sorted(OVERRIDES))
def test_tiles_equal_the_processor_image_by_image(family: str, name: str) -> None:
    for image in images():
        assert_same(*tiled(family, [image], OVERRIDES[name]))


def test_tiles_of_a_prompts_images_follow_each_other() -> None:
    assert_same(*tiled("smolvlm", images()[:3], {}))


# --- decoding: draft only at half the source or less ----------------------------------------


def jpeg(image: Image.Image, orientation: int = 1) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=92, exif=exif.tobytes())
    return out.getvalue()


@pytest.mark.parametrize(
    ("source", "target", "scale"),
    [((1920, 1080), (448, 448), 2), ((1920, 1080), (960, 540), 2), ((1920, 1080), (961, 540), 1),
     ((4000, 3000), (448, 448), 4), ((4000, 3000), (100, 100), 8), ((1920, 1080), (2048, 1152), 1)],
)
def test_draft_scale_is_the_smallest_dct_scale_at_least_the_target(
    source: tuple[int, int], target: tuple[int, int], scale: int
) -> None:
    assert fast_images.draft_scale(source, target) == scale


@pytest.fixture
def drafts(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    calls: list[tuple[int, int]] = []
    original = JpegImagePlugin.JpegImageFile.draft

    def spy(self: Any, mode: Any, size: Any) -> Any:
        calls.append(size)
        return original(self, mode, size)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    return calls


def test_a_target_above_half_the_source_decodes_in_full(drafts: list[tuple[int, int]]) -> None:
    data = (PHOTOS / "boats.jpg").read_bytes()
    loaded = fast_images.load_resized(Image.open(io.BytesIO(data)), (1932, 1092), Image.Resampling.BICUBIC)
    expected = Image.open(io.BytesIO(data)).convert("RGB").resize((1932, 1092), Image.Resampling.BICUBIC)
    assert drafts == []
    assert np.array_equal(np.asarray(loaded), np.asarray(expected))


def test_a_target_at_half_the_source_drafts_and_the_processor_agrees_on_it(drafts: list[tuple[int, int]]) -> None:
    data = (PHOTOS / "boats.jpg").read_bytes()
    loaded = fast_images.load_resized(Image.open(io.BytesIO(data)), (448, 448), Image.Resampling.BICUBIC)
    assert drafts == [(448, 448)] and loaded.size == (448, 448) and loaded.mode == "RGB"
    # Compared: the model input made from this resized image, by each path.
    hf = processor(Qwen2VLImageProcessorPil, tiny_qwen2_vl.PREPROCESSOR_CONFIG)
    assert_same(fast_images.preprocess([loaded], fast_images.settings_for("qwen2-vl", hf)), hf([loaded], return_tensors="pt"))


def test_smolvlm_from_bytes_without_a_draft_is_the_processor_on_the_full_decode(drafts: list[tuple[int, int]]) -> None:
    data = (PHOTOS / "bus.jpg").read_bytes()
    hf = processor(SmolVLMImageProcessorPil, tiny_smolvlm.PREPROCESSOR_CONFIG)
    settings = fast_images.settings_for("smolvlm", hf)
    assert isinstance(settings, fast_images.TileSettings)
    opened = Image.open(io.BytesIO(data))
    first = fast_images.load_resized(opened, fast_images.first_size(*opened.size, settings), settings.resample)
    ours = fast_images.preprocess([first], settings, resized=True)
    theirs = hf([[Image.open(io.BytesIO(data)).convert("RGB")]], return_tensors="pt", return_row_col_info=True)
    assert drafts == []
    assert_same(ours, theirs)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_drafted_images_come_upright_and_aligned(orientation: int) -> None:
    source = photo("boats.jpg").crop((0, 0, 1917, 1077))  # odd sides: the draft rounds them up
    stored = source.transpose(_TO_STORED[orientation]) if orientation in _TO_STORED else source
    opened = Image.open(io.BytesIO(jpeg(stored, orientation)))
    loaded = fast_images.load_resized(opened, (400, 300), Image.Resampling.BICUBIC)
    expected = source.resize((400, 300), Image.Resampling.BICUBIC)
    difference = np.abs(np.asarray(loaded, dtype=np.int16) - np.asarray(expected, dtype=np.int16))
    assert loaded.size == (400, 300) and difference.mean() < 3


# The transpose that turns an upright image into what a camera stores with that EXIF orientation.
_TO_STORED = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def test_a_family_without_a_fast_path_is_refused() -> None:
    with pytest.raises(ValueError, match="no fast image path"):
        fast_images.settings_for("llava", object())


def test_the_public_surface_is_pinned() -> None:
    assert sorted(fast_images.__all__) == [
        "FAMILIES", "Normalization", "QwenPatching", "TileSettings",
        "draft_scale", "first_size", "load_resized", "preprocess", "settings_for",
    ]
