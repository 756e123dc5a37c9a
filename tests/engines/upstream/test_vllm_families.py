"""Tiny families vLLM serves, behind an UpstreamEngine: Loupe's count is vLLM's, at every detail.

Qwen2-VL, Qwen2.5-VL, SmolVLM (Idefics3's processor: `low` goes as `mm_processor_kwargs`),
InternVL (tiling limits as `mm_processor_kwargs`), LLaVA-1.5 (its BOS, as `add_special_tokens`),
Mistral 3 (Loupe resizes, no kwargs), Qwen3-VL MoE and GLM-4.1V; a video for the Qwen2
families and GLM-4.1V (its sampled frames, and `media_io_kwargs` naming them).

Llama 4 at detail `high` only (two photos of 13 tiles each: 1,907 prompt tokens, 1,887 of them
the image's, in both counts). vLLM 0.32 cannot serve the other details as the Hugging Face
processor counts them, whatever Loupe sends: (1) its Llama 4 processor passes `max_patches` (the
`mm_processor_kwargs` of `low` and a downscaled `auto`, and of `None`, which is `auto`) to the
Hugging Face processor, which tiles the image to it, but then derives the tiles' layout
(`aspect_ratios`, `patches_per_image`) from the configured `max_patches`, so the engine dies on
"split_with_sizes expects split_sizes to sum exactly to 7 ..., but got split_sizes=[13]";
(2) on CPU, an image of one tile (a `low` one, or any image within 336 x 336 at `high`) kills
the engine: the patch embedding's linear gets the unfolded patches permuted, a view that oneDNN's
matmul refuses ("Expected a.stride(-1) == 1"); a batch of several tiles is copied and works.
Idefics3, Qwen3-VL and LLaVA-OneVision agree as well, checked by hand and left out for CI's time.
Qwen3-VL MoE's video (Qwen3-VL's processor): vLLM counts 2 prompt tokens more (133 against 131,
114 video tokens in both), as transformers 5.19 in vLLM's venv does: it keeps the template's outer
`<|vision_start|>`/`<|vision_end|>` around the frames it writes for `<|video_pad|>`, which
transformers 5.25 (Loupe's, and the published processor's prompt) replaces along with it.
Gemma 3 as well (its tiny tokenizer has Gemma's newline-run tokens, which vLLM's processor
looks up); it takes no pan-and-scan crops here, so every detail gives one 896 x 896 image.

The gateway runs in process (the chat service on an UpstreamEngine) and records the bodies it
sends; each is then sent to vLLM again directly, so Loupe's usage is compared with vLLM's own
count of the very request. At detail `high` Loupe plans the processor's own geometry, so a
client calling vLLM with the original photo gets the same count as well.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from bench.upstream_vllm import VllmServer
from loupe.domain import Detail, PromptMessage, Role, SamplingParams, TextPart
from loupe.engines.local.loader import read_checkpoint
from loupe.engines.upstream import UpstreamEngine, load_upstream_model
from loupe.models import TokenCounter
from tests.engines.upstream.conftest import VllmServers
from tests.engines.upstream.upstream_support import ask, completed, gateway, streamed, two_images_and_two_choices
from tests.engines.local.video_prompts import prepare_video
from tests.helpers import image_part, photo_url, resized_photo_url

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

# qwen2-vl first: the tests before this module leave its server running.
FAMILIES = ["qwen2-vl", "qwen2.5-vl", "smolvlm", "internvl", "llava", "mistral3", "qwen3-vl-moe", "glm4v", "llama4", "gemma3"]
# Families vLLM counts as Hugging Face does at detail `high` only (see the module's docstring).
HIGH_ONLY = {"llama4"}
QUESTION = "What is in the picture?"


@pytest.fixture(scope="module", params=FAMILIES)
def family(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def upstream(vllm: VllmServers, family: str) -> Iterator[VllmServer]:
    yield vllm.get(family)
    if family == FAMILIES[-1]:
        vllm.stop()  # nothing after this module needs vLLM: give its memory back


class Recording(httpx.AsyncBaseTransport):
    """Loopback HTTP that keeps the body of every chat request."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.bodies: list[dict[str, Any]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/chat/completions"):
            self.bodies.append(json.loads(request.content))
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


@pytest_asyncio.fixture
async def engine(
    family: str, upstream: VllmServer, vllm_checkpoint: Callable[[str], Path]
) -> AsyncIterator[tuple[UpstreamEngine, TokenCounter, Recording]]:
    recording = Recording()
    engine, counter = load_upstream_model(
        "gw", str(vllm_checkpoint(family)), [upstream.api], upstream.name,
        context_size=None, max_images=2, budget=1024, transport=recording,
    )  # fmt: skip
    await engine.start()
    yield engine, counter, recording
    await engine.close()


async def vllms_count(upstream: VllmServer, body: dict[str, Any]) -> tuple[int, int | None]:
    """Prompt and image tokens as vLLM counts them for `body`, sent directly."""
    direct = {k: v for k, v in body.items() if k not in ("stream", "stream_options")} | {"max_tokens": 1}
    async with httpx.AsyncClient(timeout=120) as http:
        response = await http.post(f"{upstream.api}/chat/completions", json=direct)
    assert response.status_code == 200, response.text
    usage = response.json()["usage"]
    return usage["prompt_tokens"], (usage.get("prompt_tokens_details") or {}).get("multimodal_tokens", {}).get("image")


@pytest.mark.asyncio
@pytest.mark.parametrize("detail", ["low", "auto", "high", None])
async def test_usage_is_vllms_own_count_at_every_detail(
    family: str, engine: tuple[UpstreamEngine, TokenCounter, Recording], upstream: VllmServer, detail: str | None
) -> None:
    if family in HIGH_ONLY and detail != "high":
        pytest.skip(f"vLLM 0.32 tiles {family} at the configured max_patches only")
    gw, counter, recording = engine
    chat = gateway(gw, counter)
    for stream, photo in ((True, "bus.jpg"), (False, "zidane.jpg")):
        request = ask("gw", QUESTION, (photo_url(photo), detail), max_tokens=6)
        _, usage = await (streamed if stream else completed)(chat, request)
        assert usage.image_tokens > 0 and 0 < usage.completion_tokens <= 6
        assert await vllms_count(upstream, recording.bodies[-1]) == (usage.prompt_tokens, usage.image_tokens)
    assert gw.usage_mismatches == 0 and gw.counters.retries == 0


@pytest.mark.asyncio
async def test_at_detail_high_a_client_calling_vllm_directly_gets_the_same_count(
    engine: tuple[UpstreamEngine, TokenCounter, Recording], upstream: VllmServer
) -> None:
    gw, counter, recording = engine
    _, usage = await completed(gateway(gw, counter), ask("gw", QUESTION, (photo_url("bus.jpg"), "high"), max_tokens=2))
    sent = recording.bodies[-1]
    original = sent | {"messages": [{"role": "user", "content": [image_part(photo_url("bus.jpg")), {"type": "text", "text": QUESTION}]}]}
    # `sent` keeps `add_special_tokens`: vLLM leaves special tokens out of chat prompts by
    # default, where transformers adds LLaVA-1.5's BOS (its template has none).
    assert await vllms_count(upstream, original) == (usage.prompt_tokens, usage.image_tokens)


@pytest.mark.asyncio
async def test_a_file_sent_on_as_it_came_is_counted_as_vllm_counts_it(
    family: str, engine: tuple[UpstreamEngine, TokenCounter, Recording], upstream: VllmServer
) -> None:
    """A still RGB PNG the plan keeps at its size goes as the client's file (Qwen2-VL keeps
    448 x 448 at `high`); whichever way each family's plan sends it, vLLM's count is Loupe's."""
    gw, counter, recording = engine
    url = resized_photo_url("zidane.jpg", 448, 448)
    _, usage = await completed(gateway(gw, counter), ask("gw", QUESTION, (url, "high"), max_tokens=2))
    sent = recording.bodies[-1]
    if family == "qwen2-vl":
        assert sent["messages"][0]["content"][0]["image_url"]["url"] == url
    assert await vllms_count(upstream, sent) == (usage.prompt_tokens, usage.image_tokens)
    assert gw.usage_mismatches == 0


@pytest.mark.asyncio
async def test_two_images_and_several_choices(
    family: str, engine: tuple[UpstreamEngine, TokenCounter, Recording]
) -> None:
    if family in HIGH_ONLY:
        pytest.skip(f"two images at detail low: vLLM 0.32 tiles {family} at the configured max_patches only")
    await two_images_and_two_choices(*engine[:2])


VIDEO_FAMILIES = {"qwen2-vl", "qwen2.5-vl", "glm4v"}  # of FAMILIES, those whose video is checked


@pytest.mark.asyncio
async def test_a_video_is_counted_as_vllm_counts_it(
    family: str,
    engine: tuple[UpstreamEngine, TokenCounter, Recording],
    upstream: VllmServer,
    vllm_checkpoint: Callable[[str], Path],
) -> None:
    """The sampled frames and their media_io_kwargs: vLLM takes them as they are (no resampling)
    and counts the prompt as Loupe does."""
    if family not in VIDEO_FAMILIES:
        pytest.skip(f"{family}'s video is not checked here")
    gw, _, recording = engine
    video = await prepare_video(read_checkpoint(str(vllm_checkpoint(family))), "zoom", max_frames=4, detail=Detail.LOW)
    prompt = await gw.prepare([PromptMessage(Role.USER, (video, TextPart("What happens?")))])
    events = [e async for e in gw.generate(prompt, SamplingParams(max_tokens=2), 2)]
    assert events and gw.usage_mismatches == 0
    body = recording.bodies[-1]
    assert body["media_io_kwargs"]["video"]["frames_indices"] == list(video.frames.indices)
    prompt_tokens, _ = await vllms_count(upstream, body)
    assert prompt_tokens == prompt.stats.prompt_tokens
    if family != "glm4v":  # GLM-4.1V's video tokens hold the timestamps between its frames too
        assert prompt.stats.video_tokens == video.frames.tokens
