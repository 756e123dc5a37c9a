"""Image geometry and token counts of Gemma 3 (google/gemma-3-*-it, 4b and up).

The processor resizes every image to `size` (896 x 896 published), whatever its shape, and
replaces the template's `<start_of_image>` with "\\n\\n" + `<start_of_image>` +
`image_seq_length` x `<image_soft_token>` + `<end_of_image>` + "\\n\\n". Tokens:
`image_seq_length` + 2 + 2 x (tokens of "\\n\\n"): 260 with the published tokenizer, where
"\\n\\n" is one token.

Each inserted "\\n\\n" is counted here as tokenized on its own. Gemma's tokenizer has tokens for
longer newline runs, so where the template puts a "\\n" right before the image (an image first
in a user turn, after "<start_of_turn>user\\n"), it merges with the inserted pair into one
"\\n\\n\\n": the prompt is one token shorter than text + 260. The prompt count tokenizes these
newlines in place, with the template's text; the image keeps its 260, as vLLM reports it.

Pan-and-scan never runs: `Gemma3Processor` passes `do_pan_and_scan=False` on every call unless
the caller asks otherwise, which overrides the checkpoint's `preprocessor_config.json`, and Loupe
never asks. So `detail` changes nothing: `low`, `high`, `auto` and no detail all cost the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loupe.domain import Detail
from loupe.errors import ModelLoadError
from loupe.models import config as cfg
from loupe.models.geometry import ImagePlan, check_not_empty

# The class defaults of transformers' Gemma3 processor and image processor.
_HF_IMAGE_SEQ_LENGTH = 256
_HF_SIDE = 224


@dataclass(frozen=True, slots=True)
class Gemma3Settings:
    """The processor settings that decide tokens. Defaults: gemma-3-4b-it as published.

    `double_newline_tokens` is how many tokens the tokenizer makes of "\\n\\n" (1 for Gemma's);
    it is read from the tokenizer, not from a processor file.
    """

    image_seq_length: int = 256
    height: int = 896
    width: int = 896
    double_newline_tokens: int = 1

    def __post_init__(self) -> None:
        if self.double_newline_tokens not in (1, 2):
            raise ModelLoadError("double_newline_tokens must be 1 or 2.")

    @property
    def tokens(self) -> int:
        """Soft tokens, `<start_of_image>` and `<end_of_image>`, and the two newline pairs."""
        return self.image_seq_length + 2 + 2 * self.double_newline_tokens

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Gemma3Settings:
        """Read settings as `Gemma3Processor` does; absent keys take its class defaults."""
        return cls(
            image_seq_length=cfg.positive_int(config, "image_seq_length", _HF_IMAGE_SEQ_LENGTH),
            height=cfg.edge(config, "size", "height", _HF_SIDE),
            width=cfg.edge(config, "size", "width", _HF_SIDE),
            double_newline_tokens=cfg.positive_int(config, "double_newline_tokens", 1),
        )


GEMMA3_PUBLISHED = Gemma3Settings()


@dataclass(frozen=True, slots=True)
class Gemma3Rules:
    """The Gemma 3 rules: one fixed cost for every image and every detail."""

    family: str = "gemma3"
    reference: Gemma3Settings = GEMMA3_PUBLISHED

    def published(self) -> Gemma3Settings:
        return self.reference

    def settings(self, config: Mapping[str, Any]) -> Gemma3Settings:
        return Gemma3Settings.from_config(config)

    def plan(
        self, width: int, height: int, detail: Detail | None, settings: Gemma3Settings, budget: int
    ) -> ImagePlan:
        check_not_empty(width, height)
        return ImagePlan(detail or Detail.HIGH, settings.width, settings.height, settings.tokens)
