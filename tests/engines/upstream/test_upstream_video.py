"""Videos go upstream as vLLM takes them without resampling: the sampled frames as lossless
PNGs in a `video/jpeg` data URL, and request-level `media_io_kwargs` naming which frames of
which file they are; the prompt is counted as Loupe counts it."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from loupe.domain import GenerationEvent, PromptMessage, Role, SamplingParams, TextPart
from loupe.engines.local.loader import Checkpoint, read_checkpoint
from loupe.engines.local.prompt import build_prompt
from loupe.engines.upstream.client import UpstreamClient
from loupe.engines.upstream.encode import EncodedImages, ImageFormat, video_url
from loupe.engines.upstream.engine import UpstreamEngine, UpstreamPrompt
from loupe.engines.upstream.replicas import ReplicaPool
from loupe.engines.upstream.served import ReplicaReports
from loupe.engines.upstream.video import media_io_kwargs
from loupe.errors import VideoCombinationNotSupported, VideoNotSupported
from tests.engines.local.video_prompts import prepared_video
from tests.engines.upstream.test_upstream_engine import CARD, Stream, sse, usage


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint: Callable[[str], Path]) -> Checkpoint:
    return read_checkpoint(str(tiny_checkpoint("qwen3-vl")))


def frames_of(url: str) -> list[np.ndarray]:
    """As vLLM's `VideoMediaIO.load_base64` reads a `video/jpeg` URL: split at commas, each
    part an image file."""
    head, data = url.split(",", 1)
    assert head == "data:video/jpeg;base64"
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(part)))) for part in data.split(",")]


@pytest.mark.parametrize("fmt", ["bmp", "png"])
def test_the_frames_are_the_sampled_pixels(checkpoint: Checkpoint, fmt: ImageFormat) -> None:
    video = prepared_video(checkpoint, "zoom", max_frames=5)
    frames = frames_of(video_url(video, fmt))
    assert len(frames) == 5
    assert all(np.array_equal(sent, sampled) for sent, sampled in zip(frames, video.pixels, strict=True))


def test_the_request_says_which_frames_they_are(checkpoint: Checkpoint) -> None:
    video = prepared_video(checkpoint, "mp4", max_frames=4)
    assert media_io_kwargs([]) == {}
    assert media_io_kwargs([video, video]) == {
        "media_io_kwargs": {
            "video": {
                "num_frames": 4,
                "fps": 25.0,
                "frames_indices": list(video.frames.indices),
                "total_num_frames": 100,
                "duration": 4.0,
                "do_sample_frames": False,
            }
        }
    }
    other = prepared_video(checkpoint, "zoom", max_frames=4)
    with pytest.raises(VideoCombinationNotSupported, match="its own request"):
        media_io_kwargs([video, other])


def test_a_later_turn_reuses_the_encoded_frames(checkpoint: Checkpoint) -> None:
    video = prepared_video(checkpoint, "zoom", max_frames=4)
    urls = EncodedImages(64 * 1024 * 1024)
    assert urls(video) is urls(prepared_video(checkpoint, "zoom", max_frames=4))
    assert urls(video) != urls(prepared_video(checkpoint, "zoom", max_frames=6))


def test_the_body_carries_the_video_and_the_count_is_loupes(checkpoint: Checkpoint) -> None:
    video = prepared_video(checkpoint, "mp4", max_frames=4)
    messages = [PromptMessage(Role.USER, (TextPart("What happens?"), video))]
    expected = build_prompt(checkpoint.processor, messages).stats
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, stream=Stream(sse("ok", usage=usage(prompt=expected.prompt_tokens, image=None))))

    async def scenario() -> tuple[UpstreamEngine, UpstreamPrompt, list[GenerationEvent]]:
        client = UpstreamClient(httpx.AsyncClient(transport=httpx.MockTransport(handler)))
        reports = ReplicaReports(lambda url: client.served(url, "up"), "up")
        pool = ReplicaPool(["http://a/v1"], reports.probe)
        card = replace(CARD, context_size=32768)
        engine = UpstreamEngine(card, checkpoint.processor, pool, client, "up", reports=reports, api="vllm")
        prompt = await engine.prepare(messages)
        return engine, prompt, [e async for e in engine.generate(prompt, SamplingParams(), 4)]

    engine, prompt, events = asyncio.run(scenario())
    assert prompt.stats == expected and expected.video_tokens > video.frames.tokens  # timestamps too
    assert events and engine.usage_mismatches == 0
    [body] = bodies
    part = body["messages"][0]["content"][1]
    assert part["type"] == "video_url"
    assert len(frames_of(part["video_url"]["url"])) == 4
    assert body["media_io_kwargs"]["video"]["frames_indices"] == list(video.frames.indices)


def test_an_upstream_that_is_not_vllm_refuses_video(checkpoint: Checkpoint) -> None:
    video = prepared_video(checkpoint, "zoom", max_frames=4)
    client = UpstreamClient(httpx.AsyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(500))))
    reports = ReplicaReports(lambda url: client.served(url, "up"), "up")
    pool = ReplicaPool(["http://a/v1"], reports.probe)
    card = replace(CARD, context_size=32768)
    engine = UpstreamEngine(card, checkpoint.processor, pool, client, "up", reports=reports, api="openai")
    with pytest.raises(VideoNotSupported, match="vLLM upstreams only"):
        asyncio.run(engine.prepare([PromptMessage(Role.USER, (video, TextPart("What happens?")))]))
