"""Image geometry and token counts of the Idefics3 families (Idefics3, SmolVLM).

The processor resizes the longer side to `size.longest_edge` (small images grow), caps it at
4096, then, when splitting, grows both sides to multiples of the tile edge
(`max_image_size.longest_edge`) and cuts rows x cols tiles plus one global image. Each tile and
the global image is `image_seq_len` `<image>` tokens with wrappers. Loupe hands the processor the
original image and per-image overrides, so what it plans is the processor's own geometry.
See docs/image-tokens.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from loupe.domain import Detail
from loupe.errors import ModelLoadError
from loupe.models import config as cfg
from loupe.models.geometry import ImagePlan, OverrideValue, check_not_empty

MAX_IMAGE_SIZE = 4096
"""The processor caps the longer side at 4096 after its first resize."""

# The class defaults of transformers' Idefics3/SmolVLM processors, for keys a config lacks.
_HF_LONGEST_EDGE = 4 * 364
_HF_TILE_EDGE = 364
_HF_IMAGE_SEQ_LEN = 169


@dataclass(frozen=True, slots=True)
class Idefics3Settings:
    """The processor settings that decide tokens. Defaults: SmolVLM-256M-Instruct as published.

    `double_newline_tokens` is how many tokens the tokenizer makes of "\\n\\n" (2 when each
    newline stays one token, 1 when the pair merges); it is read from the tokenizer, not from a
    processor file. See docs/image-tokens.md.
    """

    longest_edge: int = 2048
    tile_edge: int = 512
    do_image_splitting: bool = True
    do_resize: bool = True
    image_seq_len: int = 64
    double_newline_tokens: int = 2

    def __post_init__(self) -> None:
        if self.double_newline_tokens not in (1, 2):
            raise ModelLoadError("double_newline_tokens must be 1 or 2.")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Idefics3Settings:
        """Read settings as the HF processor does; absent keys take its class defaults
        (`size.longest_edge` 1456, `max_image_size.longest_edge` 364, `image_seq_len` 169)."""
        return cls(
            longest_edge=cfg.edge(config, "size", "longest_edge", _HF_LONGEST_EDGE),
            tile_edge=cfg.edge(config, "max_image_size", "longest_edge", _HF_TILE_EDGE),
            do_image_splitting=cfg.flag(config, "do_image_splitting", True),
            do_resize=cfg.flag(config, "do_resize", True),
            image_seq_len=cfg.positive_int(config, "image_seq_len", _HF_IMAGE_SEQ_LEN),
            double_newline_tokens=cfg.positive_int(config, "double_newline_tokens", 2),
        )


SMOLVLM_PUBLISHED = Idefics3Settings()
IDEFICS3_PUBLISHED = Idefics3Settings(
    longest_edge=_HF_LONGEST_EDGE, tile_edge=_HF_TILE_EDGE, image_seq_len=_HF_IMAGE_SEQ_LEN
)
"""Idefics3-8B-Llama3: size 1456, max_image_size 364, image_seq_len 169 (the class defaults)."""


@dataclass(frozen=True, slots=True)
class Layout:
    """What the processor makes of an image: the tiled canvas and its rows x cols (0 x 0: none)."""

    width: int
    height: int
    rows: int
    cols: int


def layout(width: int, height: int, settings: Idefics3Settings) -> Layout:
    """The processor's geometry for an image of `width` x `height`, float for float."""
    if settings.do_resize:
        height, width = _rescale_to_longest_edge(height, width, settings.longest_edge)
        height, width = _cap_longest_edge(height, width, MAX_IMAGE_SIZE)
    tile = settings.tile_edge
    if not settings.do_image_splitting:
        return Layout(tile, tile, 0, 0)
    height, width = _grow_to_tiles(height, width, tile)
    if height > tile or width > tile:
        return Layout(width, height, math.ceil(height / tile), math.ceil(width / tile))
    return Layout(width, height, 0, 0)


def image_tokens(grid: Layout, settings: Idefics3Settings) -> int:
    """Tokens of the processor's image prompt string for `grid`.

    Single image: `<fake><global-img>` + seq x `<image>` + `<fake>`. Split: per tile
    `<fake><row_r_col_c>` + seq x `<image>`, a "\\n" after each row, then "\\n" and the single
    image's string; the last row's "\\n" and that "\\n" meet as "\\n\\n".
    """
    seq = settings.image_seq_len
    single = seq + 3
    if grid.rows == 0 and grid.cols == 0:
        return single
    tiles = grid.rows * grid.cols * (seq + 2)
    return tiles + (grid.rows - 1) + settings.double_newline_tokens + single


@dataclass(frozen=True, slots=True)
class Idefics3Rules:
    """The Idefics3 rules for one family name, with that family's published settings."""

    family: str
    reference: Idefics3Settings

    def published(self) -> Idefics3Settings:
        return self.reference

    def settings(self, config: Mapping[str, Any]) -> Idefics3Settings:
        return Idefics3Settings.from_config(config)

    def plan(
        self,
        width: int,
        height: int,
        detail: Detail | None,
        settings: Idefics3Settings,
        budget: int,
    ) -> ImagePlan:
        check_not_empty(width, height)
        if detail is Detail.LOW:
            return _unsplit(Detail.LOW, width, height, settings)
        high = _plan(detail or Detail.HIGH, width, height, settings, ())
        if detail is not Detail.AUTO or high.tokens <= budget:
            return high
        return _within_budget(width, height, settings, budget)


def _within_budget(width: int, height: int, settings: Idefics3Settings, budget: int) -> ImagePlan:
    """Splitting with `size.longest_edge` lowered to the largest multiple of the tile edge below
    it whose tokens fit `budget`; without splitting when none does."""
    tile = settings.tile_edge
    for tiles in range((settings.longest_edge - 1) // tile, 0, -1):
        edge = tiles * tile
        lowered = replace(settings, longest_edge=edge)
        plan = _plan(Detail.AUTO, width, height, lowered, (("size.longest_edge", edge),))
        if plan.tokens <= budget:
            return plan
    return _unsplit(Detail.AUTO, width, height, settings)


def _unsplit(detail: Detail, width: int, height: int, settings: Idefics3Settings) -> ImagePlan:
    unsplit = replace(settings, do_image_splitting=False)
    return _plan(detail, width, height, unsplit, (("do_image_splitting", False),))


def _plan(
    detail: Detail,
    width: int,
    height: int,
    applied: Idefics3Settings,
    overrides: tuple[tuple[str, OverrideValue], ...],
) -> ImagePlan:
    """The plan under `applied`: the settings once `overrides` are passed to the processor."""
    grid = layout(width, height, applied)
    return ImagePlan(detail, grid.width, grid.height, image_tokens(grid, applied), overrides)


def _rescale_to_longest_edge(height: int, width: int, longest: int) -> tuple[int, int]:
    """The longer side becomes `longest`; the other follows the aspect ratio, rounded up to even."""
    aspect_ratio = width / height
    if width >= height:
        width = longest
        height = int(width / aspect_ratio)
        height += height % 2
    else:
        height = longest
        width = int(height * aspect_ratio)
        width += width % 2
    return max(height, 1), max(width, 1)


def _cap_longest_edge(height: int, width: int, cap: int) -> tuple[int, int]:
    aspect_ratio = width / height
    if width >= height and width > cap:
        width = cap
        height = int(width / aspect_ratio)
    elif height > width and height > cap:
        height = cap
        width = int(height * aspect_ratio)
    return max(height, 1), max(width, 1)


def _grow_to_tiles(height: int, width: int, tile: int) -> tuple[int, int]:
    """Both sides up to multiples of `tile`, the shorter one derived from the grown longer one."""
    aspect_ratio = width / height
    if width >= height:
        width = math.ceil(width / tile) * tile
        height = math.ceil(int(width / aspect_ratio) / tile) * tile
    else:
        height = math.ceil(height / tile) * tile
        width = math.ceil(int(height * aspect_ratio) / tile) * tile
    return height, width
