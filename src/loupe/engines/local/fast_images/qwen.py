"""Qwen-VL pixel inputs (Qwen2-VL, Qwen2.5-VL, Qwen3-VL, GLM-4.1V) without the image processor.

The image must already be at a size the processor leaves unchanged (Loupe's planner resizes it),
so all that is left is the processor's rescale, normalisation and patchify. Its layout: the image
cut into `merge_size` x `merge_size` groups of `patch_size` squares, groups in row-major order,
patches row-major within a group, each patch flattened as (channel, temporal, row, column) with
the single frame repeated `temporal_patch_size` times. Here the uint8 image is copied once into
that order (a byte copy, the cheap place to repeat frames), then normalised in contiguous passes
straight into its rows of one float32 output for all images: no float64 image, no intermediate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from loupe.engines.local.fast_images.pixels import Normalization

__all__ = ["QwenPatching", "grid", "grids", "preprocess"]


@dataclass(frozen=True, slots=True)
class QwenPatching:
    """The processor settings that decide pixel values once the size is settled."""

    patch_size: int
    merge_size: int
    temporal_patch_size: int
    normalization: Normalization

    @classmethod
    def from_image_processor(cls, image_processor: Any) -> QwenPatching:
        """Read a `Qwen2VLImageProcessor` / `Glm4vImageProcessor` (either backend)."""
        return cls(
            patch_size=int(image_processor.patch_size),
            merge_size=int(image_processor.merge_size),
            temporal_patch_size=int(image_processor.temporal_patch_size),
            normalization=Normalization.of_image_processor(image_processor),
        )

    @property
    def patch_dim(self) -> int:
        return 3 * self.temporal_patch_size * self.patch_size**2


def grid(width: int, height: int, patching: QwenPatching) -> tuple[int, int, int]:
    """(t, h, w) in patches; raises ValueError unless both sides are multiples of a merged patch."""
    factor = patching.patch_size * patching.merge_size
    if width % factor or height % factor:
        raise ValueError(f"a {width}x{height} image is not a multiple of {factor} on each side")
    return 1, height // patching.patch_size, width // patching.patch_size


def grids(images: Sequence[Image.Image | torch.Tensor], patching: QwenPatching) -> dict[str, torch.Tensor]:
    """`image_grid_thw` alone: what the prompt's placeholders need, without the pixel values."""
    return {"image_grid_thw": torch.tensor([grid(*size_of(i), patching) for i in images], dtype=torch.int64).view(-1, 3)}


def preprocess(images: Sequence[Image.Image | torch.Tensor], patching: QwenPatching) -> dict[str, torch.Tensor]:
    """`pixel_values` [patches, 3 * T * P * P] float32 and `image_grid_thw` [images, 3] int64,
    as the processor returns them for these images when it keeps their size. An image is a
    Pillow RGB image or a uint8 tensor [3, height, width] (`resize.resized`)."""
    grids = [grid(*size_of(image), patching) for image in images]
    total = sum(t * h * w for t, h, w in grids)
    out = np.empty((total, patching.patch_dim), dtype=np.float32)
    start = 0
    for image, (t, h, w) in zip(images, grids, strict=True):
        _patchify_into(image, out[start : start + t * h * w], patching)
        start += t * h * w
    return {"pixel_values": torch.from_numpy(out), "image_grid_thw": torch.tensor(grids, dtype=torch.int64).view(-1, 3)}


def size_of(image: Image.Image | torch.Tensor) -> tuple[int, int]:
    """(width, height) of a Pillow image or a [3, height, width] tensor."""
    if isinstance(image, torch.Tensor):
        return int(image.shape[-1]), int(image.shape[-2])
    return image.size


def _patchify_into(image: Image.Image | torch.Tensor, out: np.ndarray, patching: QwenPatching) -> None:
    p, m, frames = patching.patch_size, patching.merge_size, patching.temporal_patch_size
    width, height = size_of(image)
    rows, cols = height // (p * m), width // (p * m)
    ordered = _groups(image, rows, cols, p, m)[:, :, :, :, :, None]
    patches = np.empty((rows, cols, m, m, 3, frames, p, p), dtype=np.uint8)
    patches[...] = ordered
    shape = (-1, 3, frames * p * p)
    patching.normalization.apply(patches.reshape(shape), out.reshape(shape))


def _groups(image: Image.Image | torch.Tensor, rows: int, cols: int, p: int, m: int) -> np.ndarray:
    """The image's uint8 values viewed as (rows, cols, m, m, C, p, p): the processor's order."""
    if isinstance(image, torch.Tensor):
        if image.dtype != torch.uint8 or image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(f"expected a uint8 [3, height, width] tensor, got {image.dtype} {tuple(image.shape)}")
        chw = image.numpy()
        return chw.reshape(3, rows, m, p, cols, m, p).transpose(1, 4, 2, 5, 0, 3, 6)
    if image.mode != "RGB":
        raise ValueError(f"expected an RGB image, got mode {image.mode}")
    hwc = np.asarray(image)
    return hwc.reshape(rows, m, p, cols, m, p, 3).transpose(0, 3, 1, 4, 6, 2, 5)
