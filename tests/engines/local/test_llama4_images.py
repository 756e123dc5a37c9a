"""Loupe's Llama 4 image processor (transformers has it only with torchvision): its canvas,
tiles, global tile, padding and bfloat16 values, as transformers' own processor lays them out.

Its pixels were compared bit for bit with transformers' torchvision processor outside this
suite (torchvision is never in Loupe's venv): every shared photo and odd sizes, bilinear and
bicubic, at 16, 8 and 1 tiles, with torch's AVX-512, AVX2 and plain kernels (docs/internals.md).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from loupe.engines.local.llama4_images import Llama4ImageProcessorTorch, _rescaled_normalized, _scaled, resize
from loupe.models.llama4 import LLAMA4_PUBLISHED, best_canvas, fitted_size
from tests.helpers import PHOTOS


@pytest.mark.parametrize(
    ("rescale", "normalize", "mean", "std"),
    [(True, True, [0.5] * 3, [0.5] * 3), (True, True, [0.48, 0.46, 0.41], [0.27, 0.26, 0.28]), (True, False, 0.5, 0.5)],
)
def test_looked_up_values_equal_the_arithmetic(rescale: bool, normalize: bool, mean: object, std: object) -> None:
    image = torch.randint(0, 256, (2, 3, 40, 70), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    args = (rescale, 1 / 255, normalize, mean, std)
    looked_up, computed = _scaled(image, *args), _rescaled_normalized(image, *args)  # type: ignore[arg-type]
    assert looked_up.dtype == computed.dtype and torch.equal(looked_up, computed)


def test_a_photo_becomes_its_canvas_tiles_then_the_global_tile() -> None:
    with Image.open(PHOTOS / "extreme_ironing.jpg") as opened:
        photo = opened.convert("RGB")
    out = Llama4ImageProcessorTorch()(photo, return_tensors="pt")
    pixels, ratios = out["pixel_values"], out["aspect_ratios"]
    canvas = best_canvas(photo.height, photo.width, 16, LLAMA4_PUBLISHED)  # 672 x 672: 2 x 2
    assert canvas == (672, 672) and ratios.tolist() == [[2, 2]]
    assert pixels.shape == (5, 3, 336, 336) and pixels.dtype == torch.bfloat16
    array = torch.from_numpy(np.array(photo)).permute(2, 0, 1)[None].contiguous()
    fitted = resize(array, fitted_size(photo.height, photo.width, canvas, LLAMA4_PUBLISHED), "bilinear")
    assert fitted.shape[-2:] == (380, 570)  # never enlarged past one tile's side: kept, padded
    scale = (True, 1 / 255, True, [0.5] * 3, [0.5] * 3)
    canvas_pixels = _rescaled_normalized(torch.nn.functional.pad(fitted, (0, 102, 0, 292)), *scale)
    assert torch.equal(pixels[0], canvas_pixels[0, :, :336, :336])  # row by row
    assert torch.equal(pixels[1], canvas_pixels[0, :, :336, 336:])
    assert torch.equal(pixels[3], canvas_pixels[0, :, 336:, 336:])
    assert bool((pixels[3, :, 44:] == -1).all()) and bool((pixels[3, :, :, 234:] == -1).all())
    assert torch.equal(pixels[4], _rescaled_normalized(resize(array, (336, 336), "bilinear"), *scale)[0])


def test_one_tile_has_no_global_tile_and_refusals_are_clear() -> None:
    processor = Llama4ImageProcessorTorch()
    out = processor(Image.new("RGB", (300, 200)), return_tensors="pt")
    assert out["pixel_values"].shape == (1, 3, 336, 336) and out["aspect_ratios"].tolist() == [[1, 1]]
    with pytest.raises(ValueError, match="resizes"):
        processor(Image.new("RGB", (30, 20)), do_resize=False)
    with pytest.raises(ValueError, match="bilinear or bicubic"):
        processor(Image.new("RGB", (30, 20)), resample=0)
