"""POST /v1/chat/completions (and the same under /openai/v1)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from loupe.api import schemas as wire
from loupe.api.convert import to_domain, usage_to_wire
from loupe.api.sse import stream_run
from loupe.api.state import AppState


def router(state: AppState) -> APIRouter:
    api = APIRouter()

    @api.post(
        "/chat/completions",
        response_model=wire.ChatCompletion,
        responses={400: {"model": wire.ErrorEnvelope}, 404: {"model": wire.ErrorEnvelope}},
        summary="Create a chat completion (text and images)",
    )
    async def create_chat_completion(body: wire.ChatCompletionRequest, request: Request) -> object:
        chat = to_domain(body, max_choices=state.max_choices)
        run = await state.chat.start(chat)
        if chat.stream:
            return StreamingResponse(
                stream_run(run),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        done = await state.chat.complete(run)
        return wire.ChatCompletion(
            id=run.id,
            created=run.created,
            model=chat.model,
            choices=[
                wire.Choice(
                    index=i,
                    message=wire.AssistantMessage(content=text),
                    finish_reason="length" if reason == "length" else "stop",
                )
                for i, (text, reason) in enumerate(zip(done.texts, done.finish_reasons, strict=True))
            ],
            usage=usage_to_wire(done.usage),
        )

    return api
