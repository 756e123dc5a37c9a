"""Video prompts through the batched runner keep the logits of `model.generate`, step by step:
alone, beside text and image requests in one step, with images in the same prompt (Qwen
layouts), and in a later turn that reuses the states and the embeddings of the same video."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from loupe.domain import PromptMessage, Role, TextPart
from loupe.engines.local.fast_processor import skips_pixels
from loupe.engines.local.loader import LoadedModel, load_model
from loupe.engines.local.runner import KeyedPrompt
from tests.engines.local.test_batching import GREEDY, conversations, crop, next_turn, run
from tests.engines.local.test_batching_logits import Seen, assert_logits_of_generate, seen  # noqa: F401
from tests.engines.local.video_prompts import prepared_video

# Families whose requests may hold images and videos together (the others take one kind).
MIXED = {"qwen2-vl", "qwen2.5-vl", "qwen3-vl"}


@pytest.fixture(scope="module", params=["qwen2-vl", "qwen2.5-vl", "qwen3-vl", "glm4v", "llava-onevision", "smolvlm"])
def family(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def loaded(family: str, tiny_checkpoint: Callable[[str], Path]) -> LoadedModel:
    return load_model(str(tiny_checkpoint(family)), device="cpu", dtype="float32")


def test_video_prompts_beside_others_keep_the_logits_of_generate(family: str, loaded: LoadedModel, seen: Seen) -> None:  # noqa: F811
    video = prepared_video(loaded.checkpoint, "mp4", max_frames=4)
    jobs: list[tuple[list[PromptMessage], Any, int]] = [
        ([PromptMessage(Role.USER, (TextPart("What happens in this clip?"), video))], GREEDY, 7),
        (conversations()[0], GREEDY, 5),
        (conversations()[1], GREEDY, 6),
    ]
    if family in MIXED:
        other = prepared_video(loaded.checkpoint, "zoom", max_frames=5)
        image = crop("bus.jpg", (40, 40, 264, 376))
        mixed = (image, TextPart("and then"), other, TextPart("Which comes first?"))
        jobs.append(([PromptMessage(Role.USER, mixed)], GREEDY, 6))
    prompts: list[KeyedPrompt] = []
    run(loaded, jobs, keep=prompts)
    for (messages, _, steps), prompt in zip(jobs, prompts, strict=True):
        assert_logits_of_generate(loaded, messages, steps, seen[id(prompt)])
    assert prompts[0].stats.video_tokens >= video.frames.tokens > 0


def test_a_later_turn_reuses_the_video(family: str, loaded: LoadedModel, seen: Seen) -> None:  # noqa: F811
    """The second turn sends the same video again: its states are reused, its embeddings come
    from the vision cache, and for the Qwen layouts no pixel values are computed."""
    video = prepared_video(loaded.checkpoint, "zoom", max_frames=4)
    turn1 = [PromptMessage(Role.USER, (TextPart("Describe the clip."), video))]
    follow_up = PromptMessage(Role.USER, (TextPart("What moves?"),))
    turn2, first, second, events = next_turn(loaded, turn1, follow_up, (5, 6))
    assert len(events) > 1
    assert second.cached_tokens >= first.stats.prompt_tokens - 1
    assert first.local.pixels and second.local.pixels is not skips_pixels(loaded.processor)
    assert second.stats.video_tokens == first.stats.video_tokens
    assert_logits_of_generate(loaded, turn2, 6, seen[id(second)])
