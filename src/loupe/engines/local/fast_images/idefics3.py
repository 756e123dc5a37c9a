"""Idefics3 / SmolVLM pixel inputs without the image processor, equal to what it returns.

The processor's steps, each resize a Pillow resize of uint8 pixels with its filter (LANCZOS as
published): the longer side to `size.longest_edge` (capped at 4096); when splitting, both sides
grown to multiples of the tile edge, cut into rows x cols tiles in row-major order, followed by
the grown image resized to one tile (the global image); without splitting, the image resized to
one tile. Frames are then rescaled, normalised and padded to the largest frame. The resizes are
the processor's own calls, so their pixels are the same; the rest writes each frame once, as
float32, from a strided uint8 view straight into the batch tensor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from PIL import Image

from loupe.engines.local.fast_images.pixels import Normalization
from loupe.models.idefics3 import (
    MAX_IMAGE_SIZE,
    Idefics3Settings,
    _cap_longest_edge,
    _rescale_to_longest_edge,
    layout,
)

__all__ = ["TileSettings", "first_size", "preprocess"]


@dataclass(frozen=True, slots=True)
class TileSettings:
    """Geometry (Loupe's `Idefics3Settings`), the resampling filter, padding and normalisation."""

    geometry: Idefics3Settings
    resample: Image.Resampling
    do_pad: bool
    normalization: Normalization

    @classmethod
    def from_image_processor(
        cls, image_processor: Any, overrides: Mapping[str, Any] | None = None
    ) -> TileSettings:
        """Read an `Idefics3ImageProcessor` / `SmolVLMImageProcessor` (either backend) with the
        per-call keyword arguments Loupe passes it (`do_image_splitting`, `size`, ...)."""

        def get(name: str) -> Any:
            return (overrides or {}).get(name, getattr(image_processor, name))

        geometry = Idefics3Settings(
            longest_edge=int(_edge(get("size"))),
            tile_edge=int(_edge(get("max_image_size"))),
            do_image_splitting=bool(get("do_image_splitting")),
            do_resize=bool(get("do_resize")),
        )
        return cls(
            geometry=geometry,
            resample=Image.Resampling(int(get("resample"))),
            do_pad=bool(get("do_pad")),
            normalization=Normalization.of(
                do_rescale=bool(get("do_rescale")),
                rescale_factor=get("rescale_factor"),
                do_normalize=bool(get("do_normalize")),
                mean=get("image_mean"),
                std=get("image_std"),
            ),
        )


def first_size(width: int, height: int, settings: TileSettings) -> tuple[int, int]:
    """(width, height) after the processor's first resize; the same size when it does none."""
    if not settings.geometry.do_resize:
        return width, height
    h, w = _rescale_to_longest_edge(height, width, settings.geometry.longest_edge)
    h, w = _cap_longest_edge(h, w, MAX_IMAGE_SIZE)
    return w, h


def preprocess(
    images: Sequence[Image.Image], settings: TileSettings, *, resized: bool = False
) -> dict[str, Any]:
    """The processor's output for one prompt's RGB images: `pixel_values` [1, frames, 3, H, W]
    float32, `pixel_attention_mask` [1, frames, H, W] int64 (when padding), and `rows`/`cols`
    as nested lists for its placeholder text. `resized`: the images are already at
    `first_size` (decoded at that size by `decode.load_resized`), so the first resize is skipped.
    """
    frames: list[np.ndarray] = []
    rows, cols = [], []
    for image in images:
        if image.mode != "RGB":
            raise ValueError(f"expected an RGB image, got mode {image.mode}")
        first = image if resized else _resized(image, first_size(*image.size, settings), settings)
        image_frames, r, c = _frames(first, settings)
        frames.extend(image_frames)
        rows.append(r)
        cols.append(c)
    out = _batch(frames, settings)
    out.update(rows=[rows], cols=[cols])
    return out


def _frames(image: Image.Image, settings: TileSettings) -> tuple[list[np.ndarray], int, int]:
    """The image's frames as uint8 [n, 3, H, W] views, in the processor's order."""
    tile = settings.geometry.tile_edge
    if not settings.geometry.do_image_splitting:
        return [_chw(_resized(image, (tile, tile), settings))], 0, 0
    grown = layout(*image.size, replace(settings.geometry, do_resize=False))
    canvas = _resized(image, (grown.width, grown.height), settings)
    if grown.rows == 0:
        return [_chw(canvas)], 0, 0
    hwc = np.asarray(canvas).reshape(grown.rows, tile, grown.cols, tile, 3)
    tiles = hwc.transpose(0, 2, 4, 1, 3).reshape(-1, 3, tile, tile)
    return [tiles, _chw(_resized(canvas, (tile, tile), settings))], grown.rows, grown.cols


def _batch(frames: Sequence[np.ndarray], settings: TileSettings) -> dict[str, Any]:
    """Frames normalised into one [1, n, 3, H, W] tensor, padded (bottom, right) to the largest."""
    height = max(f.shape[-2] for f in frames)
    width = max(f.shape[-1] for f in frames)
    count = sum(f.shape[0] for f in frames)
    uniform = all(f.shape[-2:] == (height, width) for f in frames)
    if not settings.do_pad and not uniform:
        raise ValueError("frames of different sizes need do_pad")
    pixels = (np.empty if uniform else np.zeros)((count, 3, height, width), dtype=np.float32)
    mask = np.zeros((count, height, width), dtype=np.int64)
    start = 0
    for f in frames:
        n, h, w = f.shape[0], f.shape[-2], f.shape[-1]
        if uniform:
            settings.normalization.apply(f.reshape(n, 3, h * w), pixels[start : start + n].reshape(n, 3, h * w))
        else:
            target = np.empty((n, 3, h * w), dtype=np.float32)
            settings.normalization.apply(f.reshape(n, 3, h * w), target)
            pixels[start : start + n, :, :h, :w] = target.reshape(n, 3, h, w)
        mask[start : start + n, :h, :w] = 1
        start += n
    out: dict[str, Any] = {"pixel_values": torch.from_numpy(pixels).unsqueeze(0)}
    if settings.do_pad:
        out["pixel_attention_mask"] = torch.from_numpy(mask).unsqueeze(0)
    return out


def _chw(image: Image.Image) -> np.ndarray:
    return np.asarray(image).transpose(2, 0, 1)[None]


def _resized(image: Image.Image, size: tuple[int, int], settings: TileSettings) -> Image.Image:
    # Pillow returns an unchanged copy for the same size; skipping it keeps the same pixels.
    return image if image.size == size else image.resize(size, settings.resample)


def _edge(size: Any) -> int:
    """`longest_edge` of a processor size (a dict or a SizeDict)."""
    value = size["longest_edge"] if isinstance(size, Mapping) else size.longest_edge
    return int(value)
