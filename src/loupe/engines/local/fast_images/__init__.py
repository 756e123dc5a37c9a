"""Model inputs from images without the HF image processor: the same tensors, in less time.

`preprocess` returns what the checkpoint's image processor returns for one prompt's images
(`pixel_values` plus `image_grid_thw`, or `pixel_attention_mask` and `rows`/`cols`, or
`image_sizes`), so the processor's own `replace_image_token` can expand the prompt's
placeholders from it. Images come in as Loupe hands them to the processor: at their final size
for the Qwen-VL layouts and Mistral 3 (`resized` brings them there from the decoded picture), as
decoded for Idefics3.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from PIL import Image

import torch

from loupe.engines.local.fast_images import idefics3, pixtral, qwen
from loupe.engines.local.fast_images.idefics3 import TileSettings
from loupe.engines.local.fast_images.pixels import Normalization
from loupe.engines.local.fast_images.pixtral import PixtralPatching
from loupe.engines.local.fast_images.qwen import QwenPatching, grids
from loupe.engines.local.fast_images.resize import resized

__all__ = [
    "FAMILIES",
    "QWEN_LAYOUT",
    "Normalization",
    "PixtralPatching",
    "QwenPatching",
    "TileSettings",
    "grids",
    "preprocess",
    "resized",
    "settings_for",
]

QWEN_LAYOUT = frozenset({"qwen2-vl", "qwen2.5-vl", "qwen3-vl", "glm4v"})
TILED = frozenset({"smolvlm", "idefics3"})
PADDED = frozenset({"mistral3"})
FAMILIES = QWEN_LAYOUT | TILED | PADDED
"""Catalogue family names with a fast path."""


def settings_for(
    family: str, image_processor: Any, overrides: Mapping[str, Any] | None = None, token_patch: int = 0
) -> QwenPatching | TileSettings | PixtralPatching:
    """Read the settings once per model (and per override set) from its HF image processor.

    `overrides` are the processor keyword arguments of `domain.nested_overrides`. The Qwen-VL
    layouts and Mistral 3 take none: their images arrive at their final size. `token_patch` is
    the side of one image token in pixels where the processor rather than its image processor
    says it (Mistral 3). Raises ValueError for a family without a fast path.
    """
    if family in PADDED:
        if overrides:
            raise ValueError(f"{family} images are sized by Loupe; no processor overrides apply")
        return PixtralPatching.from_image_processor(image_processor, token_patch)
    if family in QWEN_LAYOUT:
        if overrides:
            raise ValueError(f"{family} images are sized by Loupe; no processor overrides apply")
        return QwenPatching.from_image_processor(image_processor)
    if family in TILED:
        return TileSettings.from_image_processor(image_processor, overrides)
    raise ValueError(f"no fast image path for {family!r}; choose one of {', '.join(sorted(FAMILIES))}")


def preprocess(
    images: Sequence[Image.Image | torch.Tensor], settings: QwenPatching | TileSettings | PixtralPatching
) -> dict[str, Any]:
    """The image processor's output for one prompt's images, as torch tensors (and, for
    Idefics3, `rows`/`cols` lists). Images are RGB Pillow images or, for the Qwen-VL layouts,
    uint8 [3, H, W] tensors from `resized`. CPU-bound: call it off the event loop. Raises
    ValueError for an image the fast path cannot take (not RGB; a Qwen-VL image not at a
    multiple of a token)."""
    if isinstance(settings, QwenPatching):
        return qwen.preprocess(images, settings)
    if isinstance(settings, PixtralPatching):
        return pixtral.preprocess(images, settings)
    if any(isinstance(image, torch.Tensor) for image in images):
        raise ValueError("Idefics3 images come as decoded Pillow images")
    return idefics3.preprocess(images, settings)  # type: ignore[arg-type]
