"""A served model's card, the same for every engine: counts, context, prices and detail rules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from loupe.domain import ModelCard, Prices
from loupe.models.describe import detail_rules
from loupe.models.families import counter_for
from loupe.models.geometry import TokenCounter


class CheckpointFiles(Protocol):
    """What counting needs of a checkpoint (the local loader's `Checkpoint` is one)."""

    @property
    def model_type(self) -> str: ...

    @property
    def preprocessor_config(self) -> Mapping[str, Any]: ...

    @property
    def processor_config(self) -> Mapping[str, Any]: ...

    def double_newline_tokens(self) -> int: ...


def checkpoint_counter(checkpoint: CheckpointFiles, budget: int) -> TokenCounter:
    """The image-token counter of a checkpoint, from its files' contents."""
    return counter_for(
        checkpoint.model_type,
        checkpoint.preprocessor_config,
        checkpoint.processor_config,
        budget=budget,
        double_newline_tokens=checkpoint.double_newline_tokens(),
    )


def fitted_context(native: int, configured: int | None) -> int:
    """A configured context can only lower the checkpoint's."""
    return native if configured is None else min(configured, native)


def model_card(
    model_id: str,
    checkpoint: str,
    counter: TokenCounter,
    *,
    created: int,
    native_context: int,
    context_size: int | None,
    max_images: int,
    prices: Prices,
    owned_by: str,
    family: str | None,
    fingerprint: str = "fp_unknown",
    vocab_size: int = 0,
    max_videos: int = 0,
) -> ModelCard:
    """The card `/v1/models` shows; a configured context can only lower the checkpoint's."""
    return ModelCard(
        id=model_id,
        created=created,
        owned_by=owned_by,
        family=family or counter.family,
        checkpoint=checkpoint,
        context_size=fitted_context(native_context, context_size),
        max_images=max_images,
        prices=prices,
        detail_rules=tuple(detail_rules(counter)),
        fingerprint=fingerprint,
        vocab_size=vocab_size,
        max_videos=max_videos,
    )
