"""Rescale and normalise uint8 pixels into float32 exactly as transformers' PIL backend does.

The backend computes `float32(float64(v) * rescale_factor)`, then `(x - mean) / std` in float32.
Loupe does the same operations in float32, in place, over uint8 pixels already laid out as the
model input (three contiguous passes, no float64 image, no temporaries): for the published 1/255
factor, dividing by 255 in float32 rounds to the same float32 for all 256 values, which
`Normalization` checks once rather than assumes; other factors take the float64 path, still
exact. NumPy rather than torch: single-threaded, it leaves torch's intra-op threads to the model
and measured faster on small CPUs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Normalization"]


@dataclass(frozen=True, slots=True)
class Normalization:
    """`rescale_factor` None skips the rescale; `mean`/`std` None skip the normalisation."""

    rescale_factor: float | None = 1 / 255
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    _divisor: float | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (self.mean is None) != (self.std is None):
            raise ValueError("mean and std go together")
        object.__setattr__(self, "_divisor", _exact_divisor(self.rescale_factor))

    @classmethod
    def of(
        cls,
        *,
        do_rescale: bool,
        rescale_factor: float,
        do_normalize: bool,
        mean: float | Sequence[float],
        std: float | Sequence[float],
        channels: int = 3,
    ) -> Normalization:
        """From an image processor's attributes; a scalar mean or std applies to every channel."""
        return cls(
            rescale_factor=float(rescale_factor) if do_rescale else None,
            mean=_per_channel(mean, channels) if do_normalize else None,
            std=_per_channel(std, channels) if do_normalize else None,
        )

    @classmethod
    def of_image_processor(cls, image_processor: Any) -> Normalization:
        """From an image processor's own attributes (either backend)."""
        return cls.of(
            do_rescale=bool(image_processor.do_rescale),
            rescale_factor=image_processor.rescale_factor,
            do_normalize=bool(image_processor.do_normalize),
            mean=image_processor.image_mean,
            std=image_processor.image_std,
        )

    def apply(self, pixels: np.ndarray, out: np.ndarray) -> None:
        """Write `pixels` (uint8, [..., channels, values]) into `out` (float32, same shape)."""
        if self.rescale_factor is None:
            np.copyto(out, pixels, casting="unsafe")
        elif self._divisor is not None:
            np.divide(pixels, np.float32(self._divisor), out=out, dtype=np.float32)
        else:
            np.copyto(out, pixels.astype(np.float64) * self.rescale_factor, casting="same_kind")
        if self.mean is not None and self.std is not None:
            np.subtract(out, np.array(self.mean, dtype=np.float32)[:, None], out=out)
            np.divide(out, np.array(self.std, dtype=np.float32)[:, None], out=out)


def _exact_divisor(factor: float | None) -> float | None:
    """1 / factor when float32 division by it reproduces the backend's rescale for every uint8."""
    if factor is None or factor == 0:
        return None
    divisor = 1 / factor
    values = np.arange(256)
    wanted = (values.astype(np.float64) * factor).astype(np.float32)
    found = np.divide(values.astype(np.uint8), np.float32(divisor), dtype=np.float32)
    return divisor if np.array_equal(wanted, found) else None


def _per_channel(value: float | Sequence[float], channels: int) -> tuple[float, ...]:
    if isinstance(value, (int, float)):
        return (float(value),) * channels
    found = tuple(float(v) for v in value)
    if len(found) != channels:
        raise ValueError(f"expected {channels} values, got {len(found)}")
    return found
