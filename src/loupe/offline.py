"""Estimates from image files, without a server and without model weights (`loupe estimate`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from loupe.domain import Detail, Estimate, ImageRef, Prices, PromptMessage, Role, TextPart
from loupe.engines.local.loader import read_checkpoint
from loupe.engines.local.prompt import count_prompt
from loupe.errors import ImageError, InvalidRequest
from loupe.media import probe_image
from loupe.models.card import checkpoint_counter, fitted_context
from loupe.service.chat import fit_max_tokens
from loupe.service.images import limits_for, plan_all, planned_images
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
    refs = [ImageRef(url=str(path), detail=detail, param=str(path)) for path in images]
    sizes = []
    for path in images:
        try:
            header = probe_image(path.read_bytes(), limits)
        except ImageError as exc:
            raise exc.with_param(str(path)) from None
        except OSError as exc:
            raise InvalidRequest(f"cannot read {path}: {exc.strerror}", param=str(path)) from None
        sizes.append((header.width, header.height))
    planned = planned_images(refs, sizes, plan_all(counter, refs, sizes))
    stats = count_prompt(checkpoint.processor, [PromptMessage(Role.USER, (*planned, TextPart(text)))])
    context = fitted_context(checkpoint.context_size, model.context_size)
    return Estimate(
        model=model.id,
        prompt_tokens=stats.prompt_tokens,
        image_tokens=stats.image_tokens,
        images=tuple(planned),
        max_completion_tokens=fit_max_tokens(stats, max_tokens, context),
        prices=Prices(model.input_price_per_m, model.output_price_per_m, settings.currency),
    )
