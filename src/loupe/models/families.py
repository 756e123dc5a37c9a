"""The registry of model families: which rules count a checkpoint's images, by name or model_type.

A caller holding a checkpoint's `config.json` `model_type` and its processor files asks
`counter_for(model_type, preprocessor_config, processor_config)` once, at load time, and plans
every image of that model with the counter it gets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from loupe.domain import Detail
from loupe.errors import ModelLoadError
from loupe.models import config as cfg
from loupe.models.geometry import (
    DEFAULT_IMAGE_TOKEN_BUDGET,
    FamilyRules,
    ImagePlan,
    ImageRequest,
    PromptWideRules,
    TokenCounter,
)
from loupe.models.gemma3 import Gemma3Rules
from loupe.models.glm4v import GLM4V_PUBLISHED, Glm4vRules
from loupe.models.idefics3 import IDEFICS3_PUBLISHED, SMOLVLM_PUBLISHED, Idefics3Rules
from loupe.models.internvl import InternVLRules
from loupe.models.llama4 import Llama4Rules
from loupe.models.llava import LlavaRules
from loupe.models.llava_onevision import OnevisionRules
from loupe.models.mistral3 import Mistral3Rules
from loupe.models.qwen2_vl import QWEN2_VL_PUBLISHED, QWEN3_VL_PUBLISHED, QwenRules

FAMILIES: Mapping[str, FamilyRules[Any]] = MappingProxyType(
    {
        "qwen2-vl": QwenRules("qwen2-vl", QWEN2_VL_PUBLISHED),
        "qwen2.5-vl": QwenRules("qwen2.5-vl", QWEN2_VL_PUBLISHED),
        "qwen3-vl": QwenRules("qwen3-vl", QWEN3_VL_PUBLISHED),
        "smolvlm": Idefics3Rules("smolvlm", SMOLVLM_PUBLISHED),
        "idefics3": Idefics3Rules("idefics3", IDEFICS3_PUBLISHED),
        "glm4v": Glm4vRules("glm4v", GLM4V_PUBLISHED),
        "llava": LlavaRules(),
        "llava-onevision": OnevisionRules(),
        "gemma3": Gemma3Rules(),
        "internvl": InternVLRules(),
        "mistral3": Mistral3Rules(),
        "llama4": Llama4Rules(),
    }
)
"""Every family Loupe serves, by the name `/v1/models` reports."""

MODEL_TYPES: Mapping[str, str] = MappingProxyType(
    {
        "qwen2_vl": "qwen2-vl",
        "qwen2_5_vl": "qwen2.5-vl",
        "qwen3_vl": "qwen3-vl",
        "qwen3_vl_moe": "qwen3-vl",
        "smolvlm": "smolvlm",
        "idefics3": "idefics3",
        "glm4v": "glm4v",
        "llava": "llava",
        "llava_onevision": "llava-onevision",
        "gemma3": "gemma3",
        "internvl": "internvl",
        "mistral3": "mistral3",
        "llama4": "llama4",
    }
)
"""HF `config.json` `model_type` values, and the family each belongs to."""


def family_for_model_type(model_type: str) -> str:
    """The family of a checkpoint whose `config.json` says `model_type`.

    Raises `ModelLoadError` for a model type no family serves.
    """
    family = MODEL_TYPES.get(model_type)
    if family is None:
        known = ", ".join(sorted(MODEL_TYPES))
        raise ModelLoadError(f"Model type {model_type!r} is not supported; supported: {known}.")
    return family


def rules_for(family: str) -> FamilyRules[Any]:
    """The rules of `family`. Raises `ModelLoadError` for a family Loupe does not know."""
    rules = FAMILIES.get(family)
    if rules is None:
        raise ModelLoadError(f"Model family {family!r} is not supported.")
    return rules


def counter_for(
    model_type: str,
    preprocessor_config: Mapping[str, Any],
    processor_config: Mapping[str, Any] | None = None,
    *,
    budget: int = DEFAULT_IMAGE_TOKEN_BUDGET,
    double_newline_tokens: int | None = None,
) -> TokenCounter:
    """The image counter of one checkpoint, from its files' contents (no I/O here).

    `preprocessor_config` and `processor_config` are the parsed JSON files (the latter may
    nest the former under `image_processor`). `double_newline_tokens` is
    `len(tokenizer("\\n\\n", add_special_tokens=False).input_ids)` for families whose image
    prompt holds a newline pair (Idefics3, SmolVLM); None keeps the default of 2.
    Raises `ModelLoadError` for an unknown model type, a bad setting, or a budget below 1.
    """
    if budget < 1:
        raise ModelLoadError(f"The image token budget must be at least 1, got {budget}.")
    rules = rules_for(family_for_model_type(model_type))
    config = cfg.merged(preprocessor_config, processor_config)
    if double_newline_tokens is not None:
        config["double_newline_tokens"] = double_newline_tokens
    return BoundCounter(rules, rules.settings(config), budget)


@dataclass(frozen=True, slots=True)
class BoundCounter:
    """A family's rules bound to one model's settings and budget: a `TokenCounter`."""

    rules: FamilyRules[Any]
    settings: Any
    budget: int = DEFAULT_IMAGE_TOKEN_BUDGET

    @property
    def family(self) -> str:
        return self.rules.family

    def plan(self, width: int, height: int, detail: Detail | None) -> ImagePlan:
        return self.rules.plan(width, height, detail, self.settings, self.budget)

    def plan_all(self, images: Sequence[ImageRequest]) -> list[ImagePlan]:
        if isinstance(self.rules, PromptWideRules):
            return self.rules.plan_all(images, self.settings, self.budget)
        return [self.plan(width, height, detail) for width, height, detail in images]
