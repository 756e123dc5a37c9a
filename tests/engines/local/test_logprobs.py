"""logprobs, top_logprobs and logit_bias on the batched runner and on the `generate` path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from loupe.domain import SamplingParams, TextDelta, TokenLogprob
from loupe.engines.local.loader import LoadedModel, load_model
from loupe.engines.local.vocab import Vocabulary
from tests.engines.local.test_batching import conversations, reference, run


@pytest.fixture(scope="module")
def loaded(tiny_checkpoint: Callable[[str], Path]) -> LoadedModel:
    return load_model(str(tiny_checkpoint("qwen2-vl")), device="cpu", dtype="float32")


def entries(events: list[object]) -> list[TokenLogprob]:
    return [lp for e in events if isinstance(e, TextDelta) for lp in e.logprobs]


def test_greedy_picks_the_most_likely_token_on_both_paths(loaded: LoadedModel) -> None:
    sampling = SamplingParams(temperature=0.0, logprobs=True, top_logprobs=5)
    messages = conversations()[1]
    batched, generated = entries(run(loaded, [(messages, sampling, 12)])[0]), entries(reference(loaded, messages, sampling, 12))
    assert len(batched) == len(generated) == 12
    for mine, theirs in zip(batched, generated, strict=True):
        assert len(mine.top) == 5
        assert mine.token == mine.top[0].token and mine.logprob == max(t.logprob for t in mine.top)
        assert all(a.logprob >= b.logprob for a, b in zip(mine.top, mine.top[1:]))
        assert mine.logprob <= 0.0
        assert mine.token == theirs.token and [t.token for t in mine.top] == [t.token for t in theirs.top]
        assert mine.logprob == pytest.approx(theirs.logprob, abs=1e-4)


def test_bytes_add_up_to_the_text(loaded: LoadedModel) -> None:
    sampling = SamplingParams(temperature=0.0, logprobs=True)
    events = run(loaded, [(conversations()[0], sampling, 16)])[0]
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    joined = b"".join(bytes(lp.bytes) for lp in entries(events)).decode("utf-8", errors="replace")
    assert joined.startswith(text)


def test_sampled_tokens_report_their_logprob_too(loaded: LoadedModel) -> None:
    sampling = SamplingParams(temperature=0.9, seed=3, logprobs=True, top_logprobs=2, n=2)
    events = run(loaded, [(conversations()[0], sampling, 6)])[0]
    for index in (0, 1):
        mine = [lp for e in events if isinstance(e, TextDelta) and e.index == index for lp in e.logprobs]
        assert len(mine) == 6 and all(len(lp.top) == 2 and lp.logprob <= lp.top[0].logprob for lp in mine)


def test_logit_bias_bans_and_forces_tokens_on_both_paths(loaded: LoadedModel, tiny_checkpoint: Callable[[str], Path]) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint("qwen2-vl"))
    vocabulary = Vocabulary(tokenizer)
    messages = conversations()[0]
    greedy = SamplingParams(temperature=0.0, logprobs=True)
    first = entries(run(loaded, [(messages, greedy, 1)])[0])[0]
    first_id = next(i for i in range(len(vocabulary)) if vocabulary.bytes_of(i) == bytes(first.bytes))
    banned = SamplingParams(temperature=0.0, logprobs=True, logit_bias=((first_id, -100.0),))
    forced_id = tokenizer.convert_tokens_to_ids("Ġbus")
    forced = SamplingParams(temperature=0.0, logit_bias=((forced_id, 100.0),))
    for events in (run(loaded, [(messages, banned, 1)])[0], reference(loaded, messages, banned, 1)):
        assert entries(events)[0].token != first.token
    for events in (run(loaded, [(messages, forced, 4)])[0], reference(loaded, messages, forced, 4)):
        assert "".join(e.text for e in events if isinstance(e, TextDelta)) == " bus" * 4
