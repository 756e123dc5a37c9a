"""The FastAPI application factory: routes, error handlers and lifespan, given ready services."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from loupe import __version__
from loupe.api.body_limit import BodyLimit
from loupe.api import openapi
from loupe.api.errors import install_handlers
from loupe.api.idle import WhenIdle
from loupe.api.observability import RequestContext, metrics_router
from loupe.api.routes import admin, chat, estimate, models, usage, web
from loupe.api.state import AppState
from loupe.engines.protocol import Engine
from loupe.service.budget import MemoryBudget

API_PREFIXES = ("/v1", "/openai/v1")
RATE_LIMIT_HEADERS = [f"x-ratelimit-{k}-{w}" for k in ("limit", "remaining", "reset") for w in ("requests", "tokens")]


def create_app(
    state: AppState,
    engines: Sequence[Engine] = (),
    starters: Sequence[Callable[[], Awaitable[None]]] = (),
    closers: Sequence[Callable[[], Awaitable[None]]] = (),
    on_idle: Callable[[], object] | None = None,
) -> FastAPI:
    """Build the HTTP app. `starters` run when the app starts, then the `engines` start; when it
    stops, the engines close, then `closers` run (connection pools and the like). `on_idle` runs
    (in a thread) once every request has been answered and a second has passed without a new one."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for start in starters:
            await start()
        for engine in engines:
            await engine.start()
        try:
            yield
        finally:
            for engine in engines:
                await engine.close()
            for close in closers:
                await close()

    app = FastAPI(
        title="Loupe",
        version=__version__,
        summary="Vision-language models behind the OpenAI chat-completions API",
        lifespan=lifespan,
        docs_url=None,  # served offline by web.router()
        redoc_url=None,
    )
    install_handlers(app)
    openapi.install(app)
    api = APIRouter()
    api.include_router(chat.router(state))
    api.include_router(estimate.router(state))
    api.include_router(models.router(state))
    api.include_router(usage.router(state))
    for prefix in API_PREFIXES:
        app.include_router(api, prefix=prefix)
    app.include_router(admin.router(state))
    app.include_router(web.router(models.listed_ids(state)))
    app.include_router(metrics_router(state.metrics))

    @app.get("/health", summary="Liveness and the served models")
    async def health() -> dict[str, object]:
        return {
            "status": "ok",
            "models": [card.id for card in state.chat.models()],
            "queue": state.chat.queue_depths(),
            "compute": {model: asdict(compute) for model, compute in state.compute.items()},
        }

    app.add_middleware(BodyLimit, max_bytes=state.max_request_bytes, budget=MemoryBudget(state.body_memory_bytes))
    if state.cors_origins:  # browsers may call the API from these pages; preflights are answered first
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(state.cors_origins),
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["authorization", "content-type", "x-request-id"],
            expose_headers=["x-request-id", "retry-after", "retry-after-ms", *RATE_LIMIT_HEADERS],
        )
    app.add_middleware(RequestContext)  # every response, errors included, gets an id
    if on_idle is not None:
        app.add_middleware(WhenIdle, on_idle=on_idle)  # outermost: counts every request to its last byte
    return app
