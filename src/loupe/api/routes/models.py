"""GET /v1/models and GET /v1/models/{id}."""

from __future__ import annotations

from fastapi import APIRouter

from loupe.api import schemas as wire
from loupe.api.convert import model_to_wire
from loupe.api.state import AppState
from loupe.errors import InvalidRequest

# The filter values hosted platforms accept; Loupe serves text/chat models (vision-capable).
MODEL_TYPES = ("text", "image", "audio", "video")
MODEL_SUB_TYPES = ("chat", "embedding", "reranker", "text-to-image", "image-to-image", "speech-to-text")


def router(state: AppState) -> APIRouter:
    api = APIRouter()

    @api.get("/models", response_model=wire.ModelList, summary="List the served models")
    async def list_models(type: str | None = None, sub_type: str | None = None) -> wire.ModelList:
        """`type` and `sub_type` filter as hosted platforms do (Loupe's models are text/chat)."""
        if type is not None and type not in MODEL_TYPES:
            raise InvalidRequest(f"unknown type {type!r}; use one of {', '.join(MODEL_TYPES)}", param="type")
        if sub_type is not None and sub_type not in MODEL_SUB_TYPES:
            raise InvalidRequest(
                f"unknown sub_type {sub_type!r}; use one of {', '.join(MODEL_SUB_TYPES)}", param="sub_type"
            )
        cards = [model_to_wire(card) for card in state.chat.models()]
        return wire.ModelList(
            data=[m for m in cards if type in (None, m.type) and sub_type in (None, m.sub_type)]
        )

    @api.get(
        "/models/{model_id:path}",
        response_model=wire.ModelObject,
        responses={404: {"model": wire.ErrorEnvelope}},
        summary="Describe one served model",
    )
    async def get_model(model_id: str) -> wire.ModelObject:
        return model_to_wire(state.chat.model(model_id))

    return api
