"""GET /v1/models and GET /v1/models/{id}."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Depends, Query, Request

from loupe.api import schemas as wire
from loupe.api.convert import model_to_wire
from loupe.api.auth import bearer, caller_dependency
from loupe.api.openapi import errors
from loupe.api.state import AppState
from loupe.domain import ModelCard
from loupe.service.accounts import Caller
from loupe.errors import InvalidRequest, LoupeError

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
        cards = [model_to_wire(c) for c in _visible(state.chat.models(), caller)]
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


def listed_ids(state: AppState) -> Callable[[Request], Awaitable[list[str] | None]]:
    """The ids of the models a request may list, by `GET /v1/models`' own rule, for pages that
    show them: every model while no key exists (the server runs open), those a key may use when
    one is sent; None when the request would be refused (keys exist and it sent no live one),
    or the keys cannot be read."""

    async def ids(request: Request) -> list[str] | None:
        try:
            caller = await state.accounts.caller(bearer(request))
        except LoupeError:
            return None
        return [card.id for card in _visible(state.chat.models(), caller)]

    return ids


def _visible(cards: list[ModelCard], caller: Caller) -> list[ModelCard]:
    return [c for c in cards if caller.key is None or caller.key.allows(c.id)]
