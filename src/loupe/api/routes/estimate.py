"""POST /v1/estimate: the exact prompt tokens and cost range of a chat request, without running it."""

from __future__ import annotations

from fastapi import APIRouter

from loupe.api import schemas as wire
from loupe.api.convert import estimate_to_wire, to_domain
from loupe.api.state import AppState


def router(state: AppState) -> APIRouter:
    api = APIRouter()

    @api.post(
        "/estimate",
        response_model=wire.EstimateObject,
        responses={400: {"model": wire.ErrorEnvelope}, 404: {"model": wire.ErrorEnvelope}},
        summary="Estimate a chat completion's tokens and cost before sending it",
    )
    async def estimate(body: wire.ChatCompletionRequest) -> wire.EstimateObject:
        chat = to_domain(body, max_choices=state.max_choices)
        return estimate_to_wire(await state.chat.estimate(chat))

    return api
