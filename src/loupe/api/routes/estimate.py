"""POST /v1/estimate: the exact prompt tokens and cost range of a chat request, without running it."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from loupe.api import schemas as wire
from loupe.api.convert import estimate_to_wire, to_domain
from loupe.api.auth import caller_dependency
from loupe.api.openapi import errors
from loupe.api.state import AppState
from loupe.logs import annotate
from loupe.service.accounts import Caller


def router(state: AppState) -> APIRouter:
    api = APIRouter()
    caller_of = caller_dependency(state.accounts)

    @api.post(
        "/estimate",
        response_model=wire.EstimateObject,
        responses=errors(401, 403, 404),
        summary="Estimate a chat completion's tokens and cost before sending it",
    )
    async def estimate(body: wire.ChatCompletionRequest, caller: Caller = Depends(caller_of)) -> wire.EstimateObject:
        annotate(model=body.model[:200])
        chat = to_domain(body, max_choices=state.max_choices)
        state.accounts.check_model(caller, chat.model)
        return estimate_to_wire(await state.chat.estimate(chat))

    return api
