"""POST /v1/chat/completions (and the same under /openai/v1)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, StreamingResponse

from loupe.api import schemas as wire
from loupe.api.auth import caller_dependency, rate_limit_headers
from loupe.api.convert import completion_to_wire, to_domain
from loupe.api.errors import status_of
from loupe.api.openapi import errors
from loupe.api.sse import stream_run
from loupe.api.state import AppState
from loupe.logs import annotate
from loupe.errors import LoupeError
from loupe.service.accounts import Caller


# With `"stream": true` the answer is server-sent events of `chat.completion.chunk` objects.
STREAMED = {
    "description": "The completion; with `stream`, server-sent `chat.completion.chunk` events ending in `[DONE]`",
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
}


def router(state: AppState) -> APIRouter:
    api = APIRouter()
    caller_of = caller_dependency(state.accounts)

    @api.post(
        "/chat/completions",
        response_model=wire.ChatCompletion,
        responses={**errors(401, 403, 404, 429, 502, 503, 504), 200: STREAMED},
        summary="Create a chat completion (text and images)",
    )
    async def create_chat_completion(
        body: wire.ChatCompletionRequest, caller: Caller = Depends(caller_of)
    ) -> object:
        annotate(model=body.model[:200])
        chat = to_domain(body, max_choices=state.max_choices)
        try:
            state.accounts.check_model(caller, chat.model)
            run = await state.chat.start(chat)
            ticket = await state.accounts.admit(caller, run)
        except LoupeError as exc:
            state.metrics.request_refused(chat.model, status_of(exc)[0])
            raise
        headers = rate_limit_headers(ticket.rate_limits)

        async def finish(status: int) -> None:
            await state.accounts.finish(ticket, run, status)
            state.metrics.run_finished(chat.model, status, run.usage(), run.elapsed(), run.time_to_first_token())

        if chat.stream:
            return StreamingResponse(
                stream_run(run, finish),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **headers},
            )
        try:
            done = await state.chat.complete(run)
        except LoupeError as exc:
            await finish(status_of(exc)[0])
            raise
        except BaseException:
            await finish(499)
            raise
        await finish(200)  # on the ledger before the response leaves
        return JSONResponse(completion_to_wire(run, done).model_dump(), headers=headers)

    return api
