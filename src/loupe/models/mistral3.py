"""Image geometry and token counts of Mistral 3 (mistral3: Mistral Small 3.1 / 3.2, Pixtral tower).

`PixtralProcessor` hands its image processor a patch of `patch_size * spatial_merge_size` pixels
(`p`: 28 for Mistral Small 3.1). The image processor shrinks an image larger than
`size.longest_edge` (`L`, 1,540 published), keeping its aspect ratio (`r = max(h / L, w / L)`,
both sides divided by `r` and floored), then stretches each side up to a whole number of
patches: `rows = ceil(h' / p)`, `cols = ceil(w' / p)`. The prompt's `[IMG]` becomes `cols`
`[IMG]` tokens and an `[IMG_BREAK]` per row, the last break an `[IMG_END]`:
tokens = `rows * (cols + 1)`. An image whose shorter side floors to 0 is refused (the
processor cannot resize to it).

Loupe resizes each image itself to `rows * p` x `cols * p`, which the processor keeps as it is,
so `detail` needs no processor override and may differ between images of one prompt:

- `high` or omitted: as configured (55 x 55 patches at most: 3,080 tokens published).
- `low`: the image scaled to a longer side of 16 patches (448 px published), at most 16 x 17 =
  272 tokens; an image whose `high` costs no more keeps its `high` geometry.
- `auto`: `high` if within the budget; else the largest downscale (aspect kept) that fits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loupe.domain import Detail
from loupe.errors import InvalidImageSize, ModelLoadError
from loupe.models import config as cfg
from loupe.models.geometry import ImagePlan, check_not_empty
from loupe.models.resize import LOW_DETAIL_TOKENS_PER_SIDE, downscale, largest_downscale, settle

# The class defaults of transformers' Pixtral processor and image processor.
_HF_LONGEST_EDGE = 1024
_HF_PATCH_SIZE = 16
_HF_SPATIAL_MERGE = 1


@dataclass(frozen=True, slots=True)
class Mistral3Settings:
    """The settings that decide tokens. Defaults: Mistral-Small-3.1-24B-Instruct-2503."""

    max_height: int = 1540
    max_width: int = 1540
    patch_size: int = 14
    spatial_merge_size: int = 2

    @property
    def factor(self) -> int:
        """Pixels of one image token a side: the patch the processor hands its image processor."""
        return self.patch_size * self.spatial_merge_size

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Mistral3Settings:
        """Read settings as `PixtralProcessor` and its image processor do: `size.longest_edge`
        (else `size.height` and `size.width`) bounds the image; the processor's `patch_size`
        times `spatial_merge_size` is the token patch. The image processor's own `patch_size`
        is overridden by the processor's; both published files hold the same value."""
        size = cfg.section(config, "size")
        if size and size.get("longest_edge") is None:
            height = cfg.edge(config, "size", "height", _HF_LONGEST_EDGE)
            width = cfg.edge(config, "size", "width", _HF_LONGEST_EDGE)
        else:
            height = width = cfg.edge(config, "size", "longest_edge", _HF_LONGEST_EDGE)
        return cls(
            max_height=height,
            max_width=width,
            patch_size=_patch_size(config.get("patch_size")),
            spatial_merge_size=cfg.positive_int(config, "spatial_merge_size", _HF_SPATIAL_MERGE),
        )


MISTRAL3_PUBLISHED = Mistral3Settings()


def _patch_size(value: object) -> int:
    """An int, or the image processor's `{"height": p, "width": p}` form."""
    if isinstance(value, Mapping):
        if value.get("height") != value.get("width"):
            raise ModelLoadError(f"Processor setting 'patch_size' must be square, got {value!r}.")
        value = value.get("height")
    return cfg.positive_int({"patch_size": value}, "patch_size", _HF_PATCH_SIZE)


def processor_grid(height: int, width: int, settings: Mistral3Settings) -> tuple[int, int]:
    """The processor's (rows, cols) of tokens for an image of `height` x `width`, float for float."""
    ratio = max(height / settings.max_height, width / settings.max_width)
    if ratio > 1:
        height, width = math.floor(height / ratio), math.floor(width / ratio)
    factor = settings.factor
    return (height - 1) // factor + 1, (width - 1) // factor + 1


def settled_size(height: int, width: int, settings: Mistral3Settings) -> tuple[int, int]:
    """The (height, width) Loupe hands over: the processor's size, repeated until the processor
    keeps it (one pass, unless `L` is not a whole number of patches). Raises `InvalidImageSize`
    for an image the processor would shrink to nothing."""

    def resize(h: int, w: int) -> tuple[int, int]:
        rows, cols = processor_grid(h, w, settings)
        return rows * settings.factor, cols * settings.factor

    size = settle(height, width, resize)
    if size is None or min(size) < 1:
        raise InvalidImageSize(
            f"An image of {width}x{height} is too elongated for this model: its shorter side "
            "would shrink to nothing."
        )
    return size


def image_tokens(height: int, width: int, settings: Mistral3Settings) -> int:
    """`[IMG]`s, `[IMG_BREAK]`s and the `[IMG_END]` of an image the processor keeps at this size."""
    rows, cols = height // settings.factor, width // settings.factor
    return rows * (cols + 1)


@dataclass(frozen=True, slots=True)
class Mistral3Rules:
    """The Mistral 3 rules."""

    family: str = "mistral3"
    reference: Mistral3Settings = MISTRAL3_PUBLISHED

    def published(self) -> Mistral3Settings:
        return self.reference

    def settings(self, config: Mapping[str, Any]) -> Mistral3Settings:
        return Mistral3Settings.from_config(config)

    def plan(
        self,
        width: int,
        height: int,
        detail: Detail | None,
        settings: Mistral3Settings,
        budget: int,
    ) -> ImagePlan:
        check_not_empty(width, height)
        high = settled_size(height, width, settings)
        if detail is Detail.LOW:
            longer = LOW_DETAIL_TOKENS_PER_SIDE * settings.factor
            low = settled_size(*downscale(height, width, min(longer, max(height, width))), settings)
            cheaper = image_tokens(*low, settings) < image_tokens(*high, settings)
            return _plan(Detail.LOW, low if cheaper else high, settings)
        if detail is not Detail.AUTO or image_tokens(*high, settings) <= budget:
            return _plan(detail or Detail.HIGH, high, settings)

        def fits(h: int, w: int) -> bool:
            try:
                return image_tokens(*settled_size(h, w, settings), settings) <= budget
            except InvalidImageSize:
                return False

        return _plan(Detail.AUTO, settled_size(*largest_downscale(height, width, fits), settings), settings)


def _plan(detail: Detail, size: tuple[int, int], settings: Mistral3Settings) -> ImagePlan:
    height, width = size
    return ImagePlan(detail, width, height, image_tokens(height, width, settings), loupe_resizes=True)
