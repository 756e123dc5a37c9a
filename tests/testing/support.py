"""What the tiny-checkpoint tests share: a user turn with an image, the counter's plan for it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loupe.domain import Detail
from loupe.models import config as cfg
from loupe.models.geometry import FamilyRules

USER_IMAGE_TURN = [
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]}
]


def read_json(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def planned_tokens(
    rules: FamilyRules[Any], path: Path, tokenizer: Any, width: int, height: int
) -> int:
    """The counter's tokens at detail high, with settings read from the checkpoint's files and
    "\\n\\n" counted by `tokenizer`, as the engine reads them."""
    config = cfg.merged(
        read_json(path / "preprocessor_config.json"), read_json(path / "processor_config.json")
    )
    newlines = len(tokenizer("\n\n", add_special_tokens=False)["input_ids"])
    settings = rules.settings({**config, "double_newline_tokens": newlines})
    tokens: int = rules.plan(width, height, Detail.HIGH, settings, 1024).tokens
    return tokens
