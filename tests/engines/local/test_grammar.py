"""Grammars: compiled once per schema (a bounded cache), masks as wide as the logits (padded
vocabularies never allow the padding), unenforceable keywords refused by name, and constrained
sequences beside free ones in one batch."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from loupe.domain import JsonOutput, SamplingParams, TextDelta
from loupe.engines.local.grammar import Grammars, apply
from loupe.engines.local.loader import LoadedModel, load_model
from loupe.errors import InvalidRequest
from tests.engines.local.test_batching import GREEDY, conversations, reference, run, texts

SCHEMA = {
    "type": "object",
    "properties": {"n": {"type": "integer", "minimum": 0, "maximum": 9}, "ok": {"type": "boolean"}},
    "required": ["n", "ok"],
    "additionalProperties": False,
}
JSON = JsonOutput(json.dumps(SCHEMA))


@pytest.fixture(scope="module")
def tokenizer(tiny_checkpoint: Callable[[str], Path]) -> object:
    return AutoTokenizer.from_pretrained(tiny_checkpoint("qwen2-vl"))


def test_a_schema_is_compiled_once_and_the_cache_is_bounded(tokenizer: object) -> None:
    grammars = Grammars(tokenizer, 2000, [1], None, cache_entries=2)
    for _ in range(3):
        grammars.check(JSON)
    assert grammars.compilations == 1
    for maximum in (1, 2, 3):
        grammars.check(JsonOutput(json.dumps({"type": "integer", "maximum": maximum})))
    grammars.check(JSON)  # evicted by the three after it
    assert grammars.compilations == 5


def test_masks_cover_a_padded_vocabulary_and_never_allow_the_padding(tokenizer: object) -> None:
    size = len(tokenizer)  # type: ignore[arg-type]
    width = size + 70  # an embedding padded past the tokenizer, as real checkpoints are
    grammars = Grammars(tokenizer, width, [1], None)
    state = grammars.state(JsonOutput('{"type": "string"}'))
    logits = torch.zeros(1, width)
    apply(logits, grammars.fill([state]))
    allowed = torch.isfinite(logits[0])
    assert allowed.any() and not allowed[size:].any()
    assert allowed.sum() == 1  # a JSON string opens with its quote, one token here


@pytest.mark.parametrize("keyword", ["not", "uniqueItems", "contains"])
def test_an_unenforceable_keyword_is_refused_by_name(tokenizer: object, keyword: str) -> None:
    schema = {"not": {"type": "null"}} if keyword == "not" else {"type": "array", keyword: True if keyword == "uniqueItems" else {}}
    with pytest.raises(InvalidRequest) as refused:
        Grammars(tokenizer, 2000, [1], None).check(JsonOutput(json.dumps(schema)))
    assert keyword in refused.value.message and refused.value.param == "response_format.json_schema.schema"


@pytest.fixture(scope="module")
def loaded(tiny_checkpoint: Callable[[str], Path]) -> LoadedModel:
    return load_model(str(tiny_checkpoint("qwen2-vl")), device="cpu", dtype="float32")


def test_constrained_and_free_sequences_share_a_batch(loaded: LoadedModel) -> None:
    constrained = SamplingParams(temperature=0.0, constraint=JSON)
    messages = conversations()
    jobs = [(messages[0], constrained, 60), (messages[1], GREEDY, 20), (messages[2], constrained, 60), (messages[3], GREEDY, 20)]
    together = run(loaded, jobs)
    for (conversation, sampling, max_tokens), events in zip(jobs, together, strict=True):
        assert texts(events) == texts(reference(loaded, conversation, sampling, max_tokens))
        assert events == run(loaded, [(conversation, sampling, max_tokens)])[0]
        if sampling.constraint is not None:
            value = json.loads(texts(events)[0])
            assert set(value) == {"n", "ok"} and 0 <= value["n"] <= 9
    assert all(isinstance(e, TextDelta) or e.reason in ("stop", "length") for e in together[1])
