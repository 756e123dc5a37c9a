"""End to end: an UpstreamEngine in front of a real `loupe serve` (embedded engine) on loopback.

The gateway (in process) must report the same usage as the upstream called directly, and give
the same answer at temperature 0, for every detail level: it sends the images it sized as PNG,
with the detail it applied, and the upstream's own intake leaves them as they are.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import openai
import pytest
import pytest_asyncio

from loupe.engines.upstream import UpstreamEngine, load_upstream_model
from loupe.models import TokenCounter
from tests.conftest import RunningServer
from tests.engines.upstream.upstream_support import ask, completed, gateway, streamed, two_images_and_two_choices
from tests.helpers import image_part, photo_url

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=["qwen2-vl", "smolvlm"])
def family(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def upstream(family: str, serve: Callable[..., RunningServer], tiny_checkpoint: Callable[[str], Path]) -> RunningServer:
    return serve("--model", str(tiny_checkpoint(family)))


@pytest.fixture(scope="module")
def upstream_model(upstream: RunningServer) -> str:
    client = openai.OpenAI(base_url=upstream.api, api_key="unused", max_retries=0)
    return client.models.list().data[0].id


@pytest_asyncio.fixture
async def engine(
    family: str, upstream: RunningServer, upstream_model: str, tiny_checkpoint: Callable[[str], Path]
) -> AsyncIterator[tuple[UpstreamEngine, TokenCounter]]:
    engine, counter = load_upstream_model(
        "gw", str(tiny_checkpoint(family)), [upstream.api], upstream_model, context_size=None, max_images=4, budget=1024
    )
    await engine.start()
    yield engine, counter
    await engine.close()


async def direct(
    upstream: RunningServer, model: str, text: str, url: str, detail: str | None, stream: bool
) -> tuple[str, openai.types.CompletionUsage]:
    """The same question asked of the upstream itself, with the client's original image."""
    messages = [{"role": "user", "content": [image_part(url, detail), {"type": "text", "text": text}]}]
    async with openai.AsyncOpenAI(base_url=upstream.api, api_key="unused", max_retries=0, timeout=120) as client:
        if not stream:
            out = await client.chat.completions.create(model=model, messages=messages, temperature=0, max_tokens=12)  # type: ignore[arg-type]
            assert out.usage is not None
            return out.choices[0].message.content or "", out.usage
        texts, usage = [], None
        chunks = await client.chat.completions.create(
            model=model,
            messages=messages,  # type: ignore[arg-type]
            temperature=0,
            max_tokens=12,
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in chunks:
            texts += [c.delta.content or "" for c in chunk.choices]
            usage = chunk.usage or usage
    assert usage is not None
    return "".join(texts), usage


@pytest.mark.asyncio
@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("detail", ["low", "high", "auto", None])
async def test_usage_and_answer_equal_the_direct_call(
    engine: tuple[UpstreamEngine, TokenCounter], upstream: RunningServer, upstream_model: str, detail: str | None, stream: bool
) -> None:
    gw, counter = engine
    url = photo_url("bus.jpg")
    request = ask("gw", "What is in the picture?", (url, detail))
    text, usage = await (streamed if stream else completed)(gateway(gw, counter), request)
    want_text, want = await direct(upstream, upstream_model, "What is in the picture?", url, detail, stream)
    assert want.prompt_tokens_details is not None
    assert (usage.prompt_tokens, usage.image_tokens, usage.completion_tokens) == (
        want.prompt_tokens,
        want.prompt_tokens_details.image_tokens,  # type: ignore[attr-defined]
        want.completion_tokens,
    )
    assert text == want_text
    assert gw.usage_mismatches == 0 and gw.counters.retries == 0


@pytest.mark.asyncio
async def test_two_images_and_several_choices(engine: tuple[UpstreamEngine, TokenCounter]) -> None:
    await two_images_and_two_choices(*engine)
