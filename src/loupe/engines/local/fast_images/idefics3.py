"""Idefics3 / SmolVLM pixel inputs without the image processor, from the same resized image.

The processor's steps, each resize a Pillow resize of uint8 pixels with its filter (LANCZOS as
published): the longer side to `size.longest_edge` (capped at 4096); when splitting, both sides
grown to multiples of the tile edge (the canvas), cut into rows x cols tiles in row-major order,
followed by the canvas resized to one tile (the global image); without splitting, the image
resized to one tile. Frames are then rescaled, normalised and padded to the largest frame.

Loupe makes each frame in one resize from the decoded image, with the same filter: the canvas
(or the single tile), and the global image, which the processor makes from its canvas. The same
geometry, one resampling fewer, and the costliest steps of a photo's preprocessing done on the
smaller picture. Given an image already at its canvas size, the output equals the processor's
(tests compare them). The frames are written once, as float32, from a strided uint8 view
straight into the batch tensor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from loupe.engines.local.fast_images.pixels import Normalization
from loupe.models.idefics3 import Idefics3Settings, layout

__all__ = ["TileSettings", "preprocess"]


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


def preprocess(images: Sequence[Image.Image], settings: TileSettings) -> dict[str, Any]:
    """The processor's output for one prompt's RGB images: `pixel_values` [1, frames, 3, H, W]
    float32, `pixel_attention_mask` [1, frames, H, W] int64 (when padding), and `rows`/`cols`
    as nested lists for its placeholder text."""
    frames: list[np.ndarray] = []
    rows, cols = [], []
    for image in images:
        if image.mode != "RGB":
            raise ValueError(f"expected an RGB image, got mode {image.mode}")
        image_frames, r, c = _frames(image, settings)
        frames.extend(image_frames)
        rows.append(r)
        cols.append(c)
    out = _batch(frames, settings)
    out.update(rows=[rows], cols=[cols])
    return out


def _frames(image: Image.Image, settings: TileSettings) -> tuple[list[np.ndarray], int, int]:
    """The image's frames as uint8 [n, 3, H, W] views, in the processor's order."""
    tile = settings.geometry.tile_edge
    grid = layout(*image.size, settings.geometry)
    canvas = _resized(image, (grid.width, grid.height), settings)
    if grid.rows == 0:
        return [_chw(canvas)], 0, 0
    hwc = np.asarray(canvas).reshape(grid.rows, tile, grid.cols, tile, 3)
    tiles = hwc.transpose(0, 2, 4, 1, 3).reshape(-1, 3, tile, tile)
    return [tiles, _chw(_resized(image, (tile, tile), settings))], grid.rows, grid.cols


def _batch(frames: Sequence[np.ndarray], settings: TileSettings) -> dict[str, Any]:
    """Frames normalised into one [1, n, 3, H, W] tensor, padded (bottom, right) to the largest."""
    height = max(f.shape[-2] for f in frames)
    width = max(f.shape[-1] for f in frames)
    count = sum(f.shape[0] for f in frames)
    uniform = all(f.shape[-2:] == (height, width) for f in frames)
    if not settings.do_pad and not uniform:
        raise ValueError("frames of different sizes need do_pad")
    pixels = (np.empty if uniform else np.zeros)((count, 3, height, width), dtype=np.float32)
    mask = (np.ones if uniform else np.zeros)((count, height, width), dtype=np.int64)
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
