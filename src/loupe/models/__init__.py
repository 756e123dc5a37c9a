"""Model families: image geometry and exact image-token counts, pure arithmetic (no torch)."""

from loupe.models.families import (
    FAMILIES,
    MODEL_TYPES,
    BoundCounter,
    counter_for,
    family_for_model_type,
    rules_for,
)
from loupe.models.geometry import DEFAULT_IMAGE_TOKEN_BUDGET, FamilyRules, ImagePlan, TokenCounter
from loupe.models.idefics3 import Idefics3Rules, Idefics3Settings
from loupe.models.qwen2_vl import QwenRules, QwenSettings

__all__ = [
    "DEFAULT_IMAGE_TOKEN_BUDGET",
    "FAMILIES",
    "MODEL_TYPES",
    "BoundCounter",
    "FamilyRules",
    "Idefics3Rules",
    "Idefics3Settings",
    "ImagePlan",
    "QwenRules",
    "QwenSettings",
    "TokenCounter",
    "counter_for",
    "family_for_model_type",
    "rules_for",
]
