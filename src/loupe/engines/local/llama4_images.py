"""Llama 4's image processor without torchvision: transformers has it only as a torchvision one.

The same tensors as transformers' `Llama4ImageProcessor` (pixel values in bfloat16, tiles in its
order, `aspect_ratios`), computed with the torch operations torchvision itself runs on the CPU:
the canvas and the fitted size come from `loupe.models.llama4` (the processor's arithmetic, float
for float), the resize is torch's antialiased interpolation under torchvision's rule for uint8
images, the padding is zeros at the bottom and right, and rescaling and normalising happen in
bfloat16 as the original implementation does.
"""

from __future__ import annotations

import platform
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers.image_processing_backends import PilBackend
from transformers.feature_extraction_utils import BatchFeature
from transformers.image_utils import PILImageResampling, SizeDict
from transformers.processing_utils import ImagesKwargs

from loupe.models.llama4 import Llama4Settings, best_canvas, fitted_size

_MODES = {PILImageResampling.BILINEAR: "bilinear", PILImageResampling.BICUBIC: "bicubic"}


class Llama4ImagesKwargs(ImagesKwargs, total=False):
    """The two settings Llama 4 adds: tiles per image, and whether to fill the largest canvas."""

    max_patches: int
    resize_to_max_canvas: bool


class Llama4ImageProcessorTorch(PilBackend):
    """A drop-in for transformers' `Llama4ImageProcessor`, with its class defaults."""

    resample = PILImageResampling.BILINEAR
    image_mean = [0.5, 0.5, 0.5]
    image_std = [0.5, 0.5, 0.5]
    size = {"height": 336, "width": 336}
    do_resize = True
    do_rescale = True
    do_normalize = True
    do_convert_rgb = True
    max_patches = 16
    resize_to_max_canvas = False
    valid_kwargs = Llama4ImagesKwargs
    model_input_names = ["pixel_values"]

    def _preprocess(  # type: ignore[override]
        self,
        images: list[np.ndarray],
        do_resize: bool,
        size: SizeDict,
        resample: PILImageResampling | int | None,
        do_rescale: bool,
        rescale_factor: float,
        do_normalize: bool,
        image_mean: float | list[float],
        image_std: float | list[float],
        max_patches: int,
        resize_to_max_canvas: bool,
        return_tensors: str | None = None,
        **kwargs: Any,
    ) -> BatchFeature:
        if not do_resize:
            raise ValueError("Llama 4 always resizes its images onto a canvas of tiles")
        tile = size.height
        if tile is None or size.width != tile:
            raise ValueError("Llama 4's `size` must be square")
        mode = _MODES.get(PILImageResampling(resample if resample is not None else self.resample))
        if mode is None:
            raise ValueError("Loupe's Llama 4 image path resizes bilinear or bicubic")
        settings = Llama4Settings(tile=tile, max_patches=max_patches, resize_to_max_canvas=resize_to_max_canvas)
        normalized = (do_rescale, rescale_factor, do_normalize, image_mean, image_std)
        pixels, ratios = [], []
        for array in images:
            image = torch.from_numpy(np.ascontiguousarray(array))[None]  # [1, 3, H, W] uint8
            height, width = image.shape[-2:]
            canvas = best_canvas(height, width, max_patches, settings)
            fitted = resize(image, fitted_size(height, width, canvas, settings), mode)
            padded = F.pad(fitted, (0, canvas[1] - fitted.shape[-1], 0, canvas[0] - fitted.shape[-2]))
            rows, cols = canvas[0] // tile, canvas[1] // tile
            tiles = _tiles(_scaled(padded, *normalized), rows, cols)
            if rows * cols > 1:
                whole = _scaled(resize(image, (tile, tile), mode), *normalized)
                tiles = torch.cat([tiles, whole])
            pixels.append(tiles)
            ratios.append(torch.tensor([rows, cols]))
        data = {"pixel_values": torch.cat(pixels) if return_tensors else pixels, "aspect_ratios": ratios}
        if return_tensors:
            data["aspect_ratios"] = torch.stack(ratios)
        return BatchFeature(data=data, tensor_type=return_tensors)


def resize(image: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """torchvision's (0.28) resize of a uint8 [N, C, H, W] tensor on the CPU, antialiased:
    torch's uint8 kernel where torchvision uses it (bicubic; bilinear where torch runs AVX2 or
    AVX-512 kernels, or on ARM), else in float32, rounded back to uint8 (bicubic clamped first).
    The same size is left as is."""
    if tuple(image.shape[-2:]) == size:
        return image
    vectorised = torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")
    native = mode == "bicubic" or vectorised or platform.machine() in ("aarch64", "arm64")
    if native:
        return F.interpolate(image, size=list(size), mode=mode, align_corners=False, antialias=True)
    out = F.interpolate(image.float(), size=list(size), mode=mode, align_corners=False, antialias=True)
    if mode == "bicubic":
        out = out.clamp_(0, 255)
    return out.round_().to(torch.uint8)


def _scaled(
    image: torch.Tensor,
    do_rescale: bool,
    rescale_factor: float,
    do_normalize: bool,
    mean: float | list[float],
    std: float | list[float],
) -> torch.Tensor:
    """`_rescaled_normalized` of a uint8 [N, C, H, W] image, looked up by channel and level: the
    same values (an element's result depends on its level and channel alone), in a sixth of the
    time bfloat16 arithmetic takes on a CPU (22 against 124 ms for a 16-tile canvas)."""
    channels = image.shape[1]
    levels = torch.arange(256, dtype=torch.uint8).expand(1, channels, 1, 256)
    table = _rescaled_normalized(levels, do_rescale, rescale_factor, do_normalize, mean, std)[0, :, 0]
    bits = table.contiguous().view(torch.int16) if table.dtype == torch.bfloat16 else table.contiguous()
    lookup, levels_of = bits.numpy(), image.numpy()
    out = np.empty(levels_of.shape, dtype=lookup.dtype)
    for channel in range(channels):
        np.take(lookup[channel], levels_of[:, channel], out=out[:, channel])
    found = torch.from_numpy(out)
    return found.view(torch.bfloat16) if table.dtype == torch.bfloat16 else found


def _rescaled_normalized(
    image: torch.Tensor,
    do_rescale: bool,
    rescale_factor: float,
    do_normalize: bool,
    mean: float | list[float],
    std: float | list[float],
) -> torch.Tensor:
    """Rescale and normalise in bfloat16 (both on), as the original implementation does."""
    if do_rescale and do_normalize:
        scaled = image.to(torch.bfloat16) * rescale_factor
        return (scaled - _channels(mean, scaled)) / _channels(std, scaled)
    if do_rescale:
        return image * rescale_factor
    if do_normalize:
        raise ValueError("Llama 4 normalises rescaled images only")
    return image


def _channels(values: float | list[float], like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(values, dtype=like.dtype).reshape(-1, 1, 1)


def _tiles(image: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """[1, C, rows * T, cols * T] to [rows * cols, C, T, T], row by row."""
    _, channels, height, width = image.shape
    grid = image.reshape(channels, rows, height // rows, cols, width // cols)
    return grid.permute(1, 3, 0, 2, 4).reshape(rows * cols, channels, height // rows, width // cols)
