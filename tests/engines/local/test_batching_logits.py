"""The batched runner computes the same next-token logits as `model.generate`, step by step.

Greedy texts of tiny random models are often one repeated token, so equal texts alone would
miss a wrong position or mask. Logits do not: every row the runner samples from, for several
requests decoded together, and for a next turn that reuses the states of the first, must match
what `generate` computes for that request alone.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from loupe.domain import GenerationEvent, PromptMessage, Role, TextPart
from loupe.engines.local.engine import BatchingLimits, LocalEngine
from loupe.engines.local.families import family_for
from loupe.engines.local.generation import eos_ids
from loupe.engines.local.loader import LoadedModel, load_model
from loupe.engines.local.prompt import build_prompt
from loupe.engines.local import runner as runner_module
from loupe.engines.local.runner import KeyedPrompt
from loupe.engines.local.sampler import Sampler
from loupe.engines.local.scheduler import Scheduler, Step
from tests.engines.local.test_batching import GREEDY, card, conversations, crop, next_turn, run, texts

STEPS = [12, 5, 9, 7]
# Families whose images are encoded (and so matched in the prefix cache) one by one; the others
# encode a prompt's images together.
PER_IMAGE = {"qwen2-vl", "qwen2.5-vl", "qwen3-vl", "qwen3-vl-moe", "glm4v", "llava", "gemma3", "mistral3", "llama4"}
FAMILIES = sorted(PER_IMAGE | {"smolvlm", "idefics3", "internvl", "llava-onevision"})

Seen = dict[int, list[torch.Tensor]]


@pytest.fixture(scope="module", params=FAMILIES)
def family(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def loaded(family: str, tiny_checkpoint: Callable[[str], Path]) -> LoadedModel:
    return load_model(str(tiny_checkpoint(family)), device="cpu", dtype="float32")


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> Seen:
    """Every logits row the runner samples from, by the prompt it belongs to."""
    rows: Seen = defaultdict(list)
    sample = Sampler.sample

    def spy(self: Sampler, logits: torch.Tensor, seqs: Any) -> list[int]:
        for row, seq in zip(logits, seqs, strict=True):
            rows[id(seq.request.payload)].append(row.detach().clone())
        return sample(self, logits, seqs)

    monkeypatch.setattr(Sampler, "sample", spy)
    return rows


def assert_logits_of_generate(
    loaded: LoadedModel, messages: list[PromptMessage], steps: int, ours: list[torch.Tensor]
) -> None:
    stops = sorted(eos_ids(loaded))
    inputs = build_prompt(loaded.processor, messages).inputs
    # Llama 4's processor makes bfloat16 pixels; a caller of `generate` casts them to the model's.
    inputs = {k: v.to(loaded.model.dtype) if v.is_floating_point() else v for k, v in inputs.items()}
    with torch.inference_mode():
        reference = loaded.model.generate(
            **inputs, do_sample=False, max_new_tokens=steps, output_logits=True,
            return_dict_in_generate=True, eos_token_id=stops, pad_token_id=stops[0],
        ).logits
    assert len(ours) == len(reference) > 1
    for step, (mine, theirs) in enumerate(zip(ours, reference, strict=True)):
        torch.testing.assert_close(mine, theirs[0], atol=2e-4, rtol=1e-4, msg=f"step {step}")


def assert_concurrent_logits_of_generate(loaded: LoadedModel, seen: Seen) -> None:
    jobs = [(messages, GREEDY, steps) for messages, steps in zip(conversations(), STEPS, strict=True)]
    prompts: list[Any] = []
    run(loaded, jobs, keep=prompts)
    assert len(prompts) == len(jobs)
    for (messages, _, steps), prompt in zip(jobs, prompts, strict=True):
        assert_logits_of_generate(loaded, messages, steps, seen[id(prompt)])


def test_batched_logits_equal_generate_logits(loaded: LoadedModel, seen: Seen) -> None:
    assert_concurrent_logits_of_generate(loaded, seen)


def test_gemma3_sliding_window_shorter_than_the_prompts(
    tiny_checkpoint: Callable[[str], Path], tmp_path: Path, seen: Seen
) -> None:
    """Gemma 3's sliding layers see 1,024 tokens back, which a long chat passes: here 40, shorter
    than an image, so the window and the image's two-way attention are both in play."""
    checkpoint = Path(shutil.copytree(tiny_checkpoint("gemma3"), tmp_path / "gemma3"))
    config = json.loads((checkpoint / "config.json").read_text())
    config["text_config"]["sliding_window"] = 40
    (checkpoint / "config.json").write_text(json.dumps(config))
    loaded = load_model(str(checkpoint), device="cpu", dtype="float32")
    assert loaded.model.config.text_config.sliding_window == 40
    assert_concurrent_logits_of_generate(loaded, seen)


def test_llama4_chunks_shorter_than_the_prompts(
    tiny_checkpoint: Callable[[str], Path], tmp_path: Path, seen: Seen
) -> None:
    """Llama 4's RoPE layers attend within chunks of 8,192 tokens, which a long chat passes: here
    of 40, so prompts (left-padded in the batch) and a reused prefix cross chunk boundaries."""
    checkpoint = Path(shutil.copytree(tiny_checkpoint("llama4"), tmp_path / "llama4"))
    config = json.loads((checkpoint / "config.json").read_text())
    config["text_config"]["attention_chunk_size"] = 40
    (checkpoint / "config.json").write_text(json.dumps(config))
    loaded = load_model(str(checkpoint), device="cpu", dtype="float32")
    text = loaded.model.config.text_config
    assert text.attention_chunk_size == 40
    assert set(text.layer_types) == {"chunked_attention", "full_attention"}
    assert_concurrent_logits_of_generate(loaded, seen)
    turn1 = [PromptMessage(Role.USER, (TextPart("What is this?"), crop("boats.jpg", (0, 0, 300, 300))))]
    follow_up = PromptMessage(Role.USER, (TextPart("And in a few more words than that, please?"),))
    turn2, _, second, _ = next_turn(loaded, turn1, follow_up, (6, 6))
    assert second.cached_tokens > 40
    assert_logits_of_generate(loaded, turn2, 6, seen[id(second)])


def test_a_reused_prefix_keeps_the_logits_of_generate(family: str, loaded: LoadedModel, seen: Seen) -> None:
    """A second turn that adds an image: the first turn's states (its image's too, where images
    are matched one by one) are reused, and only the new placeholders get features."""
    turn1 = [PromptMessage(Role.USER, (TextPart("What is this?"), crop("boats.jpg", (0, 0, 448, 448))))]
    follow_up = PromptMessage(Role.USER, (crop("bus.jpg", (40, 40, 264, 376)), TextPart("And this one?")))
    turn2, _, second, events = next_turn(loaded, turn1, follow_up, (6, 6))
    assert len(events) > 1
    ids = second.local.inputs["input_ids"][0]
    first_image = int((ids == loaded.model.config.image_token_id).nonzero()[0])
    assert second.cached_tokens > (first_image if family in PER_IMAGE else 0)
    assert_logits_of_generate(loaded, turn2, 6, seen[id(second)])


def test_a_step_prefills_its_requests_in_one_forward_pass(
    family: str, loaded: LoadedModel, seen: Seen, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests admitted together (different lengths, with and without images, one reusing the
    states of an earlier turn) go through one padded prefill and keep the logits of `generate`."""
    described = family_for(loaded.checkpoint.model_type)
    assert described is not None
    if not described.batched:
        pytest.skip("this family prefills one request per forward pass")
    turn1 = [PromptMessage(Role.USER, (TextPart("What is this?"), crop("boats.jpg", (0, 0, 448, 448))))]
    widths: list[int] = []  # rows of each prefill forward pass (the decode passes give ids)
    # Qwen3-VL's prefill calls its language model itself, with the deepstack rows (a list, where
    # the model's own forward, which the decode steps go through, passes None).
    qwen3 = loaded.checkpoint.model_type in ("qwen3_vl", "qwen3_vl_moe")
    prefills = loaded.model.model.language_model if qwen3 else loaded.model
    marker = "deepstack_visual_embeds" if qwen3 else "inputs_embeds"

    def count(module: Any, args: Any, kwargs: dict[str, Any], output: Any) -> None:
        if kwargs.get(marker) is not None:
            widths.append(int(kwargs["inputs_embeds"].shape[0]))

    async def scenario() -> list[tuple[list[PromptMessage], KeyedPrompt, int]]:
        # A budget that admits all of them at once, whatever the family's image tokens.
        engine = LocalEngine(card(), loaded, max_queue=8, limits=BatchingLimits(prefill_budget=1 << 20))
        await engine.start()
        try:
            first = await engine.prepare(turn1)
            answer = texts([e async for e in engine.generate(first, GREEDY, 6)])[0]
            reply = PromptMessage(Role.ASSISTANT, (TextPart(answer),))
            turn2 = [*turn1, reply, PromptMessage(Role.USER, (TextPart("Sure?"),))]
            jobs = [(turn2, 5), *zip(conversations(), STEPS, strict=True)]
            prompts = [await engine.prepare(messages) for messages, _ in jobs]
            hold_until(len(jobs))
            streams = [engine.generate(p, GREEDY, steps) for p, (_, steps) in zip(prompts, jobs, strict=True)]
            await asyncio.gather(*(drain(stream) for stream in streams))
            return [(messages, prompt, steps) for (messages, steps), prompt in zip(jobs, prompts, strict=True)]
        finally:
            await engine.close()

    def hold_until(waiting: int) -> None:
        """The scheduler admits nothing until `waiting` requests are queued: one step gets them all."""
        schedule = Scheduler.schedule
        admitted = False

        def held(self: Scheduler) -> Step:
            nonlocal admitted
            admitted = admitted or len(self.requests()) >= waiting
            return schedule(self) if admitted else Step((), ())

        monkeypatch.setattr(Scheduler, "schedule", held)
        # Prompts this unlike would be grouped by size; here the padding is what is checked.
        monkeypatch.setattr(runner_module, "grouped", lambda sizes: [list(range(len(sizes)))])
        widths.clear()

    hook = prefills.register_forward_hook(count, with_kwargs=True)
    try:
        done = asyncio.run(scenario())
    finally:
        hook.remove()
    assert widths == [len(done)]
    # The others may share a few template tokens with the first turn, so the reused lengths differ.
    assert done[0][1].cached_tokens > max(prompt.cached_tokens for _, prompt, _ in done[1:])
    for messages, prompt, steps in done:
        assert_logits_of_generate(loaded, messages, steps, seen[id(prompt)])


async def drain(events: AsyncIterator[GenerationEvent]) -> None:
    async for _ in events:
        pass


def test_mistral3_images_of_different_sizes_in_one_prompt(tiny_checkpoint: Callable[[str], Path], seen: Seen) -> None:
    """Mistral 3's processor pads a prompt's images to one size; each is encoded from its own."""
    loaded = load_model(str(tiny_checkpoint("mistral3")), device="cpu", dtype="float32")
    images = (crop("bus.jpg", (40, 40, 264, 376)), crop("boats.jpg", (0, 0, 448, 140)))
    messages = [PromptMessage(Role.USER, (*images, TextPart("Compare.")))]
    prompts: list[Any] = []
    run(loaded, [(messages, GREEDY, 6)], keep=prompts)
    sizes = build_prompt(loaded.processor, messages).inputs["image_sizes"].tolist()
    assert len({tuple(s) for s in sizes}) == 2
    assert_logits_of_generate(loaded, messages, 6, seen[id(prompts[0])])
