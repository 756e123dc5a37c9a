"""Shared by the upstream end-to-end tests: an in-process gateway (the chat service on an
UpstreamEngine) and the domain requests it takes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import aclosing
from pathlib import Path

import pytest

from loupe.domain import ChatRequest, Detail, ImageRef, Message, Role, SamplingParams, TextDelta, TextPart, Usage
from loupe.engines.upstream import UpstreamEngine
from loupe.errors import LoupeError
from loupe.media import ImageLimits, MediaIntake
from loupe.models import TokenCounter
from loupe.service.chat import ChatService
from loupe.service.images import ImageService
from tests.conftest import RunningServer, start_server
from tests.helpers import photo_url


def gateway(engine: UpstreamEngine, counter: TokenCounter) -> ChatService:
    model = engine.card.id
    images = ImageService({model: MediaIntake(ImageLimits())}, {model: counter})
    return ChatService({model: engine}, images)


def ask(model: str, text: str, *images: tuple[str, str | None], max_tokens: int = 12, **sampling: object) -> ChatRequest:
    """A user message of images (data URL, detail) then text, greedy unless told otherwise."""
    parts: list[ImageRef | TextPart] = [
        ImageRef(url=url, detail=Detail(detail) if detail else None, param=f"messages[0].content[{i}].image_url")
        for i, (url, detail) in enumerate(images)
    ]
    parts.append(TextPart(text))
    params = SamplingParams(max_tokens=max_tokens, **{"temperature": 0.0, **sampling})  # type: ignore[arg-type]
    return ChatRequest(model=model, messages=(Message(Role.USER, tuple(parts)),), sampling=params)


async def streamed(chat: ChatService, request: ChatRequest) -> tuple[str, Usage]:
    """The gateway's answer read event by event, as the SSE route does."""
    run = await chat.start(request)
    texts: list[str] = []
    async with aclosing(run.events()) as events:
        async for event in events:
            if isinstance(event, TextDelta):
                texts.append(event.text)
    return "".join(texts), run.usage()


async def completed(chat: ChatService, request: ChatRequest) -> tuple[str, Usage]:
    """The gateway's answer gathered whole, as the non-streaming route does."""
    done = await chat.complete(await chat.start(request))
    return done.texts[0], done.usage


async def one_request(chat: ChatService, request: ChatRequest, outcomes: list[str]) -> None:
    """Run one request to the end; record "ok", "failed mid-stream" or "failed before streaming"."""
    run = await chat.start(request)
    streamed = False
    try:
        async with aclosing(run.events()) as events:
            async for event in events:
                streamed = streamed or isinstance(event, TextDelta)
        outcomes.append("ok")
    except LoupeError:
        outcomes.append("failed mid-stream" if streamed else "failed before streaming")


async def eventually(condition: Callable[[], bool], seconds: float) -> bool:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return True
        await asyncio.sleep(0.05)
    return condition()


async def two_images_and_two_choices(engine: UpstreamEngine, counter: TokenCounter) -> None:
    """Two photos at detail low and n=2, sampled: both choices come back, usage agrees upstream."""
    chat = gateway(engine, counter)
    request = ask("gw", "Compare them.", (photo_url("bus.jpg"), "low"), (photo_url("zidane.jpg"), "low"), n=2, temperature=0.8, seed=1)
    done = await chat.complete(await chat.start(request))
    assert len(done.texts) == 2
    assert done.usage.completion_tokens > 0 and done.usage.image_tokens > 0
    assert engine.usage_mismatches == 0


def keyed_gateway(folder: Path, upstream: str, upstream_model: str, checkpoint: Path, key: str) -> RunningServer:
    """A `loupe serve` in front of `upstream` with two models: `gw` sends `key`, read from the
    environment variable its config names (the file never holds it), and `gw-nokey` sends none.
    Each tries one replica once, so a refusal comes back as it is."""
    variable = "LOUPE_TEST_UPSTREAM_KEY"
    config = folder / "front.toml"
    config.write_text(
        "".join(
            f"""
[[models]]
id = "{model_id}"
engine = "upstream"
upstream = ["{upstream}"]
upstream_model = "{upstream_model}"
checkpoint = "{checkpoint}"
[models.upstream_options]
max_attempts = 1
{setting}
"""
            for model_id, setting in (("gw", f'api_key_env = "{variable}"'), ("gw-nokey", ""))
        )
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv(variable, key)  # read once, as the server starts
        return start_server(["--config", str(config)], folder / "front.log")
