"""Image geometry and token counts of LLaVA-1.5 (llava-hf/llava-1.5-*-hf).

The processor (CLIP's image processor) resizes the shorter side to `size.shortest_edge` and
crops the centre to `crop_size`, so every image becomes the same crop: (crop height / patch) x
(crop width / patch) `<image>` tokens, plus `num_additional_image_tokens` (CLIP's class token),
less one when `vision_feature_select_strategy` is "default" (the model drops the class token).
Published: 336 x 336, patch 14, one extra, "default": 24 x 24 = 576 tokens. There are no
wrappers; the template's "\\n" after `<image>` is its own text.

`detail` changes nothing: `low`, `high`, `auto` and no detail all cost the same 576 tokens, so
Loupe passes the original image and no overrides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loupe.domain import Detail
from loupe.errors import ModelLoadError
from loupe.models import config as cfg
from loupe.models.geometry import ImagePlan, check_not_empty

# The class default of transformers' CLIP and LLaVA image processors, for a file without one.
_HF_CROP = 224


@dataclass(frozen=True, slots=True)
class LlavaSettings:
    """The processor settings that decide tokens. Defaults: llava-1.5-7b-hf as published."""

    crop_height: int = 336
    crop_width: int = 336
    patch_size: int = 14
    num_additional_image_tokens: int = 1
    drops_class_token: bool = True

    @property
    def tokens(self) -> int:
        grid = (self.crop_height // self.patch_size) * (self.crop_width // self.patch_size)
        return grid + self.num_additional_image_tokens - int(self.drops_class_token)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> LlavaSettings:
        """Read settings as `LlavaProcessor` and its image processor do.

        `patch_size` has no usable default (the processor cannot count without it), and a
        processor that does not centre-crop makes the count depend on the image and the tower
        refuse it, so both are load errors.
        """
        if not cfg.flag(config, "do_center_crop", True):
            raise ModelLoadError("LLaVA checkpoints must centre-crop: set do_center_crop to true.")
        if config.get("patch_size") is None:
            raise ModelLoadError("Processor setting 'patch_size' is required for LLaVA.")
        strategy = config.get("vision_feature_select_strategy")
        if strategy not in (None, "default", "full"):
            raise ModelLoadError(
                "Processor setting 'vision_feature_select_strategy' must be 'default' or 'full', "
                f"got {strategy!r}."
            )
        extra = config.get("num_additional_image_tokens", 0)
        if isinstance(extra, bool) or not isinstance(extra, int) or extra < 0:
            raise ModelLoadError(
                f"Processor setting 'num_additional_image_tokens' must be 0 or more, got {extra!r}."
            )
        settings = cls(
            crop_height=cfg.edge(config, "crop_size", "height", _HF_CROP),
            crop_width=cfg.edge(config, "crop_size", "width", _HF_CROP),
            patch_size=cfg.positive_int(config, "patch_size", 14),
            num_additional_image_tokens=extra,
            drops_class_token=strategy == "default",
        )
        if settings.tokens < 1:
            raise ModelLoadError("LLaVA settings leave no image token: the crop is below a patch.")
        return settings


LLAVA_PUBLISHED = LlavaSettings()


@dataclass(frozen=True, slots=True)
class LlavaRules:
    """The LLaVA-1.5 rules: one fixed cost for every image and every detail."""

    family: str = "llava"
    reference: LlavaSettings = LLAVA_PUBLISHED

    def published(self) -> LlavaSettings:
        return self.reference

    def settings(self, config: Mapping[str, Any]) -> LlavaSettings:
        return LlavaSettings.from_config(config)

    def plan(
        self, width: int, height: int, detail: Detail | None, settings: LlavaSettings, budget: int
    ) -> ImagePlan:
        check_not_empty(width, height)
        return ImagePlan(
            detail or Detail.HIGH, settings.crop_width, settings.crop_height, settings.tokens
        )
