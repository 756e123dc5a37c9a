"""GET /v1/models and GET /v1/models/{id}."""

from __future__ import annotations

from fastapi import APIRouter

from loupe.api import schemas as wire
from loupe.api.convert import model_to_wire
from loupe.api.state import AppState


def router(state: AppState) -> APIRouter:
    api = APIRouter()

    @api.get("/models", response_model=wire.ModelList, summary="List the served models")
    async def list_models() -> wire.ModelList:
        return wire.ModelList(data=[model_to_wire(card) for card in state.chat.models()])

    @api.get(
        "/models/{model_id:path}",
        response_model=wire.ModelObject,
        responses={404: {"model": wire.ErrorEnvelope}},
        summary="Describe one served model",
    )
    async def get_model(model_id: str) -> wire.ModelObject:
        return model_to_wire(state.chat.model(model_id))

    return api
