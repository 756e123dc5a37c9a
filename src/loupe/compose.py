"""The composition root: settings in, loaded engines and a ready HTTP app out."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from fastapi import FastAPI

from loupe.api.app import create_app
from loupe.api.state import AppState
from loupe.domain import ModelCard
from loupe.engines.local.engine import LocalEngine
from loupe.engines.local.loader import load_model
from loupe.engines.protocol import Engine
from loupe.service.chat import ChatService
from loupe.service.images import ImageService
from loupe.settings import ModelSettings, Settings


def load_local_engine(model: ModelSettings, settings: Settings) -> LocalEngine:
    """Load one model's weights (this is where start-up time goes) and wrap it as an engine."""
    loaded = load_model(model.checkpoint, device=settings.engine.device, dtype=settings.engine.dtype)
    context = loaded.context_size if model.context_size is None else min(model.context_size, loaded.context_size)
    card = ModelCard(
        id=model.id,
        created=int(time.time()),
        owned_by=model.owned_by,
        family=model.family or loaded.model_type,
        checkpoint=model.checkpoint,
        context_size=context,
        max_images=model.images.max_images,
    )
    return LocalEngine(card, loaded, max_queue=settings.engine.max_queue)


def load_engines(
    settings: Settings, on_model: Callable[[ModelSettings], None] | None = None
) -> dict[str, Engine]:
    engines: dict[str, Engine] = {}
    for model in settings.models:
        if on_model is not None:
            on_model(model)
        engines[model.id] = load_local_engine(model, settings)
    return engines


def build_app(settings: Settings, engines: Mapping[str, Engine]) -> FastAPI:
    images = ImageService.from_settings(settings)
    chat = ChatService(engines, images)
    state = AppState(
        chat=chat,
        max_choices=settings.engine.max_choices,
        max_request_bytes=settings.max_request_bytes,
    )
    return create_app(state, list(engines.values()))
