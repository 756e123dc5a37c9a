"""Mistral 3 (Pixtral) pixel inputs without the image processor.

Loupe's planner hands each image over at whole tokens a side, a size the processor keeps; what
is left is its rescale and normalisation (`Normalization`, float for float as the PIL backend)
and the batch padding: every image of the prompt zero-padded, after normalisation, at the bottom
and right to the largest height and width among them, with each one's own size in
`image_sizes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from loupe.engines.local.fast_images.pixels import Normalization
from loupe.engines.local.fast_images.qwen import size_of

__all__ = ["PixtralPatching", "preprocess"]


@dataclass(frozen=True, slots=True)
class PixtralPatching:
    """The settings that decide pixel values once the size is settled, and the token patch
    (`patch_size * spatial_merge_size` of the processor) both sides must be a multiple of."""

    token_patch: int
    normalization: Normalization

    @classmethod
    def from_image_processor(cls, image_processor: Any, token_patch: int) -> PixtralPatching:
        """Read a `PixtralImageProcessor` (either backend); padding must be on, as published."""
        if not image_processor.do_pad or token_patch < 1:
            raise ValueError("the fast path pads a prompt's images to one size, by whole patches")
        return cls(
            token_patch=token_patch,
            normalization=Normalization.of_image_processor(image_processor),
        )


def preprocess(images: Sequence[Image.Image | torch.Tensor], patching: PixtralPatching) -> dict[str, Any]:
    """`pixel_values` [images, 3, max height, max width] float32 and `image_sizes` [images, 2],
    as the processor returns them for images it keeps at their size. An image is a Pillow RGB
    image or a uint8 tensor [3, height, width]; raises ValueError for one that is not a whole
    number of token patches a side."""
    sizes = [size_of(image) for image in images]
    if any(w % patching.token_patch or h % patching.token_patch for w, h in sizes):
        raise ValueError(f"an image is not a multiple of {patching.token_patch} on each side")
    height, width = max(h for _, h in sizes), max(w for w, _ in sizes)
    out = np.zeros((len(images), 3, height, width), dtype=np.float32)
    for i, (image, (w, h)) in enumerate(zip(images, sizes, strict=True)):
        normalized = np.empty((3, h * w), dtype=np.float32)
        patching.normalization.apply(_channels_first(image).reshape(3, h * w), normalized)
        out[i, :, :h, :w] = normalized.reshape(3, h, w)
    return {"pixel_values": torch.from_numpy(out), "image_sizes": torch.tensor([[h, w] for w, h in sizes])}


def _channels_first(image: Image.Image | torch.Tensor) -> np.ndarray:
    if isinstance(image, torch.Tensor):
        if image.dtype != torch.uint8 or image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(f"expected a uint8 [3, height, width] tensor, got {image.dtype} {tuple(image.shape)}")
        return np.ascontiguousarray(image.numpy())
    if image.mode != "RGB":
        raise ValueError(f"expected an RGB image, got mode {image.mode}")
    return np.ascontiguousarray(np.asarray(image).transpose(2, 0, 1))
