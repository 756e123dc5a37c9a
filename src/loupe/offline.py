"""Estimates from image files, without a server and without model weights (`loupe estimate`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from loupe.domain import Detail, Estimate, PlannedImage, Prices, PromptMessage, Role, TextPart
from loupe.engines.local.loader import read_checkpoint
from loupe.engines.local.prompt import count_prompt
from loupe.errors import ImageError, InvalidRequest
from loupe.media import probe_image
from loupe.models.card import checkpoint_counter
from loupe.service.chat import fit_max_tokens
from loupe.service.images import limits_for
from loupe.settings import Settings


def estimate_files(
    settings: Settings,
    model_id: str,
    images: Sequence[Path],
    *,
    detail: Detail | None,
    text: str,
    max_tokens: int | None,
) -> Estimate:
    """The estimate `/v1/estimate` would give for one user message holding these files and `text`."""
    model = next((m for m in settings.models if m.id == model_id), None)
    if model is None:
        raise InvalidRequest(f"model {model_id!r} is not in the configuration", param="model")
    checkpoint = read_checkpoint(model.checkpoint)
    counter = checkpoint_counter(checkpoint, model.images.auto_detail_token_budget)
    limits = limits_for(model, settings.fetch)
    planned = []
    for index, path in enumerate(images):
        try:
            header = probe_image(path.read_bytes(), limits)
            plan = counter.plan(header.width, header.height, detail)
        except ImageError as exc:
            raise exc.with_param(str(path)) from None
        except OSError as exc:
            raise InvalidRequest(f"cannot read {path}: {exc.strerror}", param=str(path)) from None
        planned.append(
            PlannedImage(
                index=index,
                width=header.width,
                height=header.height,
                detail=detail,
                detail_applied=plan.detail_applied,
                resized_width=plan.resized_width,
                resized_height=plan.resized_height,
                tokens=plan.tokens,
            )
        )
    stats = count_prompt(checkpoint.processor, [PromptMessage(Role.USER, (*planned, TextPart(text)))])
    native = checkpoint.context_size
    context = native if model.context_size is None else min(model.context_size, native)
    return Estimate(
        model=model.id,
        prompt_tokens=stats.prompt_tokens,
        image_tokens=stats.image_tokens,
        images=tuple(planned),
        max_completion_tokens=fit_max_tokens(stats, max_tokens, context),
        prices=Prices(model.input_price_per_m, model.output_price_per_m, settings.currency),
    )
