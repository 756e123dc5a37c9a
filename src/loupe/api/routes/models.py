"""GET /v1/models and GET /v1/models/{id}."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from loupe.api import schemas as wire
from loupe.api.convert import model_to_wire
from loupe.api.auth import caller_dependency
from loupe.api.openapi import errors
from loupe.api.state import AppState
from loupe.service.accounts import Caller
from loupe.errors import InvalidRequest

# The filter values hosted platforms accept; Loupe serves text/chat models (vision-capable).
MODEL_TYPES = ("text", "image", "audio", "video")
MODEL_SUB_TYPES = ("chat", "embedding", "reranker", "text-to-image", "image-to-image", "speech-to-text")


def router(state: AppState) -> APIRouter:
    api = APIRouter()
    caller_of = caller_dependency(state.accounts)

    @api.get("/models", response_model=wire.ModelList, responses=errors(401), summary="List the served models")
    async def list_models(
        type: str | None = Query(None, json_schema_extra={"enum": list(MODEL_TYPES)}),
        sub_type: str | None = Query(None, json_schema_extra={"enum": list(MODEL_SUB_TYPES)}),
        caller: Caller = Depends(caller_of),
    ) -> wire.ModelList:
        """`type` and `sub_type` filter as hosted platforms do (Loupe's models are text/chat);
        a key restricted to some models sees only those."""
        if type is not None and type not in MODEL_TYPES:
            raise InvalidRequest(f"unknown type {type!r}; use one of {', '.join(MODEL_TYPES)}", param="type")
        if sub_type is not None and sub_type not in MODEL_SUB_TYPES:
            raise InvalidRequest(
                f"unknown sub_type {sub_type!r}; use one of {', '.join(MODEL_SUB_TYPES)}", param="sub_type"
            )
        cards = [model_to_wire(c) for c in state.chat.models() if caller.key is None or caller.key.allows(c.id)]
        return wire.ModelList(
            data=[m for m in cards if type in (None, m.type) and sub_type in (None, m.sub_type)]
        )

    @api.get(
        "/models/{model_id:path}",
        response_model=wire.ModelObject,
        responses=errors(401, 403, 404),
        summary="Describe one served model",
    )
    async def get_model(model_id: str, caller: Caller = Depends(caller_of)) -> wire.ModelObject:
        card = state.chat.model(model_id)
        state.accounts.check_model(caller, card.id)
        return model_to_wire(card)

    return api
