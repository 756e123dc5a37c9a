"""The values and seams every model family shares: an image's plan and the rules that make it.

A plan answers, before any pixel is decoded: which `detail` was applied, what geometry the HF
processor will work at, which processor arguments Loupe passes for this image, and exactly how
many prompt tokens the image becomes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

from loupe.domain import Detail, nested_overrides
from loupe.errors import InvalidImageSize

DEFAULT_IMAGE_TOKEN_BUDGET = 1024
"""Image tokens `detail: auto` may spend on one image unless a model is configured otherwise."""

OverrideValue = bool | int


@dataclass(frozen=True, slots=True)
class ImagePlan:
    """How one image of a known size is handed to its model, and what it costs.

    `resized_width` x `resized_height` is the geometry the HF processor works at for this image:
    the size Loupe resizes to (Qwen) or the size the processor itself produces (Idefics3).
    `processor_overrides` are per-image processor arguments, as (key, value) pairs; a dotted key
    names a nested argument (`size.longest_edge`). `tokens` counts every prompt token the
    processor inserts for the image.
    """

    detail_applied: Detail
    resized_width: int
    resized_height: int
    tokens: int
    processor_overrides: tuple[tuple[str, OverrideValue], ...] = ()
    loupe_resizes: bool = False
    """True when Loupe resizes the image to the planned size before the processor sees it
    (the processor then leaves it as is); False when the processor sizes it (overrides apply)."""

    def processor_kwargs(self) -> dict[str, Any]:
        """The overrides as keyword arguments for the HF processor: `size.longest_edge` nests."""
        return nested_overrides(self.processor_overrides)


def check_not_empty(width: int, height: int) -> None:
    """Raise `InvalidImageSize` for an image without pixels, which no family can plan."""
    if width < 1 or height < 1:
        raise InvalidImageSize(f"An image must be at least 1x1 pixels, got {width}x{height}.")


SettingsT = TypeVar("SettingsT")
SettingsContraT = TypeVar("SettingsContraT", contravariant=True)


class FamilyRules(Protocol[SettingsT]):
    """The image rules of one model family: how its processor is configured and what it produces.

    Implementations are stateless and pure arithmetic: no torch, no transformers, no pixels.
    """

    @property
    def family(self) -> str:
        """The family's name, as `/v1/models` reports it (`qwen2-vl`, `smolvlm`)."""
        ...

    def published(self) -> SettingsT:
        """The processor settings of the family's reference checkpoint, for when none are read."""
        ...

    def settings(self, config: Mapping[str, Any]) -> SettingsT:
        """Read processor settings from a checkpoint's configuration, as the HF processor would.

        `config` is the image processor's `preprocessor_config.json`, merged with the processor's
        own values (`image_seq_len`) where the family needs them. Keys it lacks take the HF
        class defaults, exactly as the processor would. Raises `ModelLoadError` for a value that
        is missing, of the wrong type, or out of range.
        """
        ...

    def plan(
        self, width: int, height: int, detail: Detail | None, settings: SettingsT, budget: int
    ) -> ImagePlan:
        """Plan an image of `width` x `height` pixels at `detail` (None: the client did not say).

        `budget` caps the image tokens of `detail: auto`. The plan's `tokens` equals what the
        real processor inserts for the image handed to it as the plan says. Raises
        `InvalidImageSize` for a size the family's processor refuses (an empty side, or an
        aspect ratio beyond its limit).
        """
        ...


ImageRequest = tuple[int, int, Detail | None]
"""One image of a prompt: (width, height, detail)."""


@runtime_checkable
class PromptWideRules(Protocol[SettingsContraT]):
    """Rules whose plan for an image depends on the prompt's other images (LLaVA-OneVision)."""

    def plan_all(
        self, images: Sequence[ImageRequest], settings: SettingsContraT, budget: int
    ) -> list[ImagePlan]:
        """Plan every image of one prompt, in order."""
        ...


class TokenCounter(Protocol):
    """One served model's image accounting: its family's rules bound to its settings and budget."""

    @property
    def family(self) -> str:
        """The family whose rules count for this model."""
        ...

    def plan(self, width: int, height: int, detail: Detail | None) -> ImagePlan:
        """Plan an image of `width` x `height` at `detail`; see `FamilyRules.plan` for errors."""
        ...

    def plan_all(self, images: Sequence[ImageRequest]) -> list[ImagePlan]:
        """Plan every image of one prompt, in order: what the prompt's processor call makes of each."""
        ...
