"""The resize arithmetic Qwen-VL and GLM-4.1V share: the token grid, settling, the budget search.

Both processors round each side to a multiple of `factor = patch_size * merge_size`, bring the
area within pixel bounds keeping the aspect ratio, and refuse a longer side over 200 times the
shorter. The families differ in what they do before rounding and in what they refuse, so each
keeps its own `smart_resize` and `settled_size`, built from these pieces.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol, TypeVar

from loupe.domain import Detail
from loupe.errors import InvalidImageSize
from loupe.models.geometry import ImagePlan

MAX_ASPECT_RATIO = 200
"""The processors refuse an image whose longer side exceeds 200 times its shorter side."""

_SETTLE_LIMIT = 32

Resize = Callable[[int, int], tuple[int, int]]
"""(height, width) to (height, width)."""


def round_to_grid(
    height: int, width: int, factor: int, min_pixels: int, max_pixels: int, frames: int = 1
) -> tuple[int, int]:
    """`smart_resize`'s rounding, float for float: both sides to multiples of `factor`, then
    the area, counted over `frames` frames, shrunk or grown into [min_pixels, max_pixels]."""
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if frames * h_bar * w_bar > max_pixels:
        beta = math.sqrt((frames * height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif frames * h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (frames * height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def settle(height: int, width: int, resize: Resize) -> tuple[int, int] | None:
    """`resize` repeated until it leaves its result as it is; None where it never does."""
    size = resize(height, width)
    for _ in range(_SETTLE_LIMIT):
        again = resize(*size)
        if again == size:
            return size
        size = again
    return None


def check_aspect_ratio(height: int, width: int, named: tuple[int, int] | None = None) -> None:
    """Raise `InvalidImageSize` where the processor would refuse `height` x `width`; the message
    names the image as `named` (height, width), by default the size checked."""
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        named_height, named_width = named or (height, width)
        raise InvalidImageSize(
            f"An image of {named_width}x{named_height} is too elongated for this model: its "
            f"longer side may be at most {MAX_ASPECT_RATIO} times its shorter side."
        )


def grid_tokens(height: int, width: int, factor: int) -> int:
    """Tokens of an image the processor leaves at `height` x `width` (multiples of `factor`)."""
    return (height // factor) * (width // factor)


class Gridded(Protocol):
    """Settings with a token grid: `patch_size * merge_size` pixels per token side."""

    @property
    def factor(self) -> int: ...


S = TypeVar("S", bound=Gridded)

LOW_DETAIL_TOKENS_PER_SIDE = 16
"""`detail: low` is a square of 16 x 16 merged patches: 256 tokens (448 x 448 for Qwen2-VL)."""


def low_size(
    high: tuple[int, int], settings: S, factor: int, settled: Callable[[int, int, S], tuple[int, int]]
) -> tuple[int, int]:
    """`low`: the fixed square, unless the full resolution already costs no more (a small image
    is not enlarged to be made "cheaper")."""
    if grid_tokens(*high, factor) <= LOW_DETAIL_TOKENS_PER_SIDE**2:
        return high
    side = LOW_DETAIL_TOKENS_PER_SIDE * factor
    return settled(side, side, settings)


def planned(
    detail: Detail | None,
    original: tuple[int, int],
    high: tuple[int, int],
    settings: S,
    budget: int,
    settled: Callable[[int, int, S], tuple[int, int]],
) -> ImagePlan:
    """The plan for `detail`, from the image's (height, width), the family's settled
    full-resolution size and its `settled` rule (raising `InvalidImageSize` for a size the
    processor refuses)."""
    factor = settings.factor
    if detail is Detail.LOW:
        return resized_plan(Detail.LOW, low_size(high, settings, factor, settled), factor)
    if detail is not Detail.AUTO or grid_tokens(*high, factor) <= budget:
        return resized_plan(detail or Detail.HIGH, high, factor)
    return resized_plan(Detail.AUTO, _within_budget(*original, settings, budget, settled), factor)


def _within_budget(
    height: int, width: int, settings: S, budget: int, settled: Callable[[int, int, S], tuple[int, int]]
) -> tuple[int, int]:
    """The settled size of the largest downscale the processor accepts whose tokens fit
    `budget` (or the smallest)."""

    def fits(downscaled_height: int, downscaled_width: int) -> bool:
        try:
            size = settled(downscaled_height, downscaled_width, settings)
        except InvalidImageSize:
            return False
        return grid_tokens(*size, settings.factor) <= budget

    return settled(*largest_downscale(height, width, fits), settings)


def resized_plan(detail: Detail, size: tuple[int, int], factor: int) -> ImagePlan:
    """The plan for an image Loupe resizes to `size` (height, width), which the processor keeps."""
    height, width = size
    return ImagePlan(detail, width, height, grid_tokens(height, width, factor), loupe_resizes=True)


def largest_downscale(height: int, width: int, fits: Callable[[int, int], bool]) -> tuple[int, int]:
    """The largest downscale of `height` x `width` (aspect kept) that `fits`.

    The search runs over the longer side; `fits` must hold below any longer side it holds for,
    so bisection finds the largest. Where nothing fits, the smallest downscale is returned.
    """
    fitting, too_big = 1, max(height, width)
    while too_big - fitting > 1:
        middle = (fitting + too_big) // 2
        if fits(*downscale(height, width, middle)):
            fitting = middle
        else:
            too_big = middle
    return downscale(height, width, fitting)


def downscale(height: int, width: int, longer: int) -> tuple[int, int]:
    """`height` x `width` scaled so its longer side is `longer`; the shorter side rounds half up."""
    if width >= height:
        return max(1, (2 * height * longer + width) // (2 * width)), longer
    return longer, max(1, (2 * width * longer + height) // (2 * height))
