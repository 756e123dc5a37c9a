"""A prompt's text is refused from its length, or after a few pieces, never undercounting a prompt that fits."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from loupe.domain import Detail, PlannedImage, PromptMessage, Role, TextPart
from loupe.engines.local.loader import read_checkpoint
from loupe.engines.local.prompt import count_prompt
from loupe.engines.local.fewest_tokens import FewestTokens
from loupe.engines.local.text_budget import TextBudget, chars_per_token, refuse_oversized, text_budget
from loupe.errors import ContextLengthExceeded
from loupe.testing.tiny import FAMILIES

# Pieces of text that stress pre-tokenizers: contractions, combining marks, numbers that are not
# digits, runs of spaces and newlines, punctuation between letters, scripts without spaces.
ATOMS = [
    "the", "photo", " shows", " ", "  ", "   ", "\n", "\n\n", " \n", "\t", ".", ",", "-", "'s", "'", "’", "é",
    "e\u0301", "²", "7", "12", "3456", "日本語", "!?", "...", "Ünïcödé", "#", "_", "x_y", "a.b", "Hello", "WORLD",
    "/", "'LL", "\r\n", "ǅ", "ﬁ", "\u2060",
]
# The regex pre-tokenizers of GPT-2 (inside ByteLevel), cl100k / Llama 3 and o200k.
CL100K = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
O200K = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def trained(pre: Any, normalizer: Any = None) -> Tokenizer:
    """A byte-level BPE behind `pre`, trained on the atoms so that long merges exist."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre
    tokenizer.normalizer = normalizer
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=800, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(["".join(ATOMS[i:] + ATOMS[:i]) * 3 for i in range(len(ATOMS))], trainer)
    return tokenizer


def regex_split(pattern: str) -> Any:
    return pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(pattern), behavior="isolated"), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )


TOKENIZERS = {
    "gpt2": lambda: trained(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)),
    "cl100k": lambda: trained(regex_split(CL100K), normalizers.NFC()),
    "o200k": lambda: trained(regex_split(O200K)),
}


@pytest.fixture(scope="module", params=sorted(TOKENIZERS))
def tokenizer(request: pytest.FixtureRequest) -> Tokenizer:
    built: Tokenizer = TOKENIZERS[request.param]()
    built.add_special_tokens(list(ADDED))  # matched whole, as chat templates' control tokens are
    return built


def spec(tokenizer: Tokenizer) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(tokenizer.to_str())
    return found


ADDED = ("<|end|>", "<a_b>")
texts = st.lists(st.sampled_from(ATOMS), min_size=1, max_size=400).map("".join)
WORDS = ["the", "photo", "Hello", "WORLD", "Ünïcödé", "日本語", "ǅx"]
# Text with a place to cut at least every 34 characters: " " + a word + up to 3 atoms + "."
sentences = st.lists(st.tuples(st.sampled_from(WORDS), st.lists(st.sampled_from(ATOMS), max_size=3)), min_size=1, max_size=60).map(
    lambda chunks: "".join(f" {word}{''.join(rest)}." for word, rest in chunks)
)


def counter(tokenizer: Tokenizer) -> Callable[[str], int]:
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=sentences)
def test_pieces_add_up_to_the_whole_count(tokenizer: Tokenizer, text: str) -> None:
    budget = TextBudget(chars_per_token(spec(tokenizer), tokenizer.get_vocab()), pieces=True, piece=80)
    assert budget._pieces(counter(tokenizer), text, 10**9) == counter(tokenizer)(text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts)
def test_pieces_never_count_more_than_the_whole(tokenizer: Tokenizer, text: str) -> None:
    budget = TextBudget(chars_per_token(spec(tokenizer), tokenizer.get_vocab()), pieces=True, piece=24)
    assert budget._pieces(counter(tokenizer), text, 10**9) <= counter(tokenizer)(text)


# Long words of letters and digits (no place to cut), between ordinary atoms, and special tokens.
words = st.tuples(
    st.lists(st.sampled_from(ATOMS), max_size=6).map("".join),
    st.text(alphabet="abcdeXY019", min_size=300, max_size=3_000),
    st.lists(st.sampled_from([*ATOMS, *ADDED]), max_size=6).map("".join),
).map("".join)


def anywhere(tokenizer: Tokenizer, piece: int) -> TextBudget:
    """A budget that cuts long words anywhere, as `text_budget` makes for byte-level BPE."""
    longest = max(map(len, tokenizer.get_vocab(with_added_tokens=False)))
    budget = TextBudget(chars_per_token(spec(tokenizer), tokenizer.get_vocab()), pieces=True, piece=piece)
    assert budget.chars_per_token is not None
    return replace(budget, fewest=FewestTokens(tokenizer, budget.chars_per_token), slack=longest - 1, added=ADDED)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=words | texts)
def test_words_cut_anywhere_never_count_more_than_the_whole(tokenizer: Tokenizer, text: str) -> None:
    budget = anywhere(tokenizer, piece=24)
    assert budget.fewest is not None and budget.fewest(text) <= counter(tokenizer)(text)
    assert budget._pieces(counter(tokenizer), text, 10**9) <= counter(tokenizer)(text)


def test_a_long_word_is_counted_in_pieces_no_larger_than_wide(tokenizer: Tokenizer) -> None:
    budget, counted = anywhere(tokenizer, piece=24), []
    fewest = budget.fewest
    assert fewest is not None

    def counting(text: str) -> int:
        counted.append(text)
        return fewest(text)

    word = "abcdeXY019" * 2_000
    total = replace(budget, fewest=counting)._pieces(counter(tokenizer), f"Say {word}<|end|>", 10**9)
    assert len(counted) > 1 and max(map(len, counted)) <= budget.wide
    assert all("<|end|>" in piece or "<" not in piece for piece in counted)  # never split
    assert fewest(word) - len(counted) * budget.slack <= total <= counter(tokenizer)(f"Say {word}<|end|>")


def test_no_cut_splits_an_added_token(tokenizer: Tokenizer) -> None:
    from loupe.engines.local.text_budget import _cut

    text = "ab cd <a_b>ef " * 30  # the last place in each piece's second half is inside "<a_b>"
    assert _cut(text, 0, 24) == 22 and _cut(text, 0, 24, ADDED) == 16
    budget = replace(TextBudget(chars_per_token(spec(tokenizer), tokenizer.get_vocab()), pieces=True, piece=24), added=ADDED)
    assert budget._pieces(counter(tokenizer), text, 10**9) == counter(tokenizer)(text)


def test_regex_byte_level_tokenizers_are_counted_in_pieces(tokenizer: Tokenizer) -> None:
    from loupe.engines.local.text_budget import _cuts_are_splits

    assert _cuts_are_splits(spec(tokenizer))
    assert chars_per_token(spec(tokenizer), tokenizer.get_vocab()) == max(map(len, tokenizer.get_vocab())) * (
        4 if tokenizer.normalizer is not None else 1
    )


@pytest.mark.parametrize(
    ("change", "bounded"),
    [
        ({"normalizer": {"type": "Strip", "strip_left": True, "strip_right": True}}, False),
        ({"normalizer": {"type": "BertNormalizer"}}, False),
        ({"normalizer": {"type": "Replace", "pattern": {"String": "  "}, "content": " "}}, True),
        ({"normalizer": {"type": "Replace", "pattern": {"String": "a"}, "content": ""}}, False),
        ({"pre_tokenizer": {"type": "Whitespace"}}, False),
        ({"pre_tokenizer": {"type": "Split", "pattern": {"String": " "}, "behavior": "Removed"}}, False),
        ({"model": {"type": "WordPiece"}}, False),
        ({"model": {"type": "BPE", "byte_fallback": True}}, True),
    ],
)
def test_a_part_that_may_drop_characters_leaves_no_bound(change: dict[str, Any], bounded: bool) -> None:
    described = {"normalizer": None, "pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "BPE"}, **change}
    vocab = {ch: i for i, ch in enumerate(pre_tokenizers.ByteLevel.alphabet())} | {"abcdef": 999}
    found = chars_per_token(described, vocab)
    assert (found is not None) == bounded
    if described["normalizer"] and described["normalizer"]["type"] == "Replace" and bounded:
        assert found == 12  # two spaces may become one


@pytest.fixture(scope="module")
def processors(tiny_checkpoint: Callable[[str], Path]) -> dict[str, Any]:
    return {family: read_checkpoint(str(tiny_checkpoint(family))).processor for family in FAMILIES}


roles = st.sampled_from([Role.USER, Role.ASSISTANT])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    family=st.sampled_from(FAMILIES),
    system=st.none() | texts,
    turns=st.lists(texts, min_size=1, max_size=4),
    image=st.integers(0, 300),
)
def test_the_floor_never_exceeds_the_prompt(processors: dict[str, Any], family: str, system: str | None, turns: list[str], image: int) -> None:
    processor = processors[family]
    planned = PlannedImage(0, 64, 64, None, Detail.LOW, 64, 64, tokens=image)
    messages = [PromptMessage(Role.SYSTEM, (TextPart(system),))] if system is not None else []
    for i, text in enumerate(turns):  # alternating turns, as Gemma's template requires
        content = (planned, TextPart(text)) if i == 0 else (TextPart(text),)
        messages.append(PromptMessage(Role.USER if i % 2 == 0 else Role.ASSISTANT, content))
    longest = max(processor.tokenizer.get_vocab(), key=len)
    for dense in (messages, [*messages[:-1], PromptMessage(messages[-1].role, (TextPart(longest * 40),))]):
        assert text_budget(processor).floor(dense) <= count_prompt(processor, dense).prompt_tokens


def test_template_tokens_of_the_qwen_layout(processors: dict[str, Any]) -> None:
    budget = text_budget(processors["qwen2-vl"])
    assert replace(budget, added=()) == TextBudget(20, fixed=3, per_turn=2, pieces=True, slack=19)
    assert budget.fewest is not None and "<|im_start|>" in budget.added


def ask(text: str, image: int = 0) -> list[PromptMessage]:
    planned = PlannedImage(0, 64, 64, None, Detail.LOW, 64, 64, tokens=image)
    return [PromptMessage(Role.USER, (planned, TextPart(text)))]


def test_text_over_the_context_by_its_length_is_refused_without_tokenizing(processors: dict[str, Any]) -> None:
    processor = processors["qwen2-vl"]
    budget = text_budget(processor)
    with pytest.raises(ContextLengthExceeded, match=r"at least 50005 tokens: its 1000000 characters") as refused:
        budget.refuse_beyond(ask("a" * 1_000_000), context_size=32_768)
    assert refused.value.param == "messages"
    budget.refuse_beyond(ask("a" * 20_000), context_size=32_768)
    with pytest.raises(ContextLengthExceeded):  # the image's tokens count too
        budget.refuse_beyond(ask("a" * 20_000, image=32_000), context_size=32_768)


def test_a_long_text_over_the_context_is_refused_after_a_few_pieces(processors: dict[str, Any]) -> None:
    processor = processors["qwen2-vl"]
    backend = processor.tokenizer.backend_tokenizer
    counted: list[int] = []

    def count(text: str) -> int:
        counted.append(len(text))
        return len(backend.encode(text, add_special_tokens=False))

    words = ("The photo shows a man ironing clothes on a board that is fixed to a taxi. " * 8_000)[:600_000]
    with pytest.raises(ContextLengthExceeded, match=r"at least 3[23]\d{3} tokens \(counted until over\)"):
        text_budget(processor).count_long(count, words, context_size=32_768)
    assert sum(counted) < 200_000  # what 32,768 tokens hold, not the 600,000 characters sent
    counted.clear()
    fits = words[:100_000]
    text_budget(processor).count_long(count, fits, context_size=32_768)
    assert sum(counted) == len(fits)
    with pytest.raises(ContextLengthExceeded, match="counted until over"):
        refuse_oversized(processor, ask(words), context_size=32_768)
    refuse_oversized(processor, ask(fits), context_size=32_768)


def test_one_long_word_under_the_floor_is_refused_after_a_few_pieces(processors: dict[str, Any]) -> None:
    processor = processors["qwen2-vl"]
    backend = processor.tokenizer.backend_tokenizer
    budget, counted = text_budget(processor), []
    assert budget.fewest is not None

    def count(text: str) -> int:
        counted.append(len(text))
        return len(backend.encode(text, add_special_tokens=False))

    def fewest(text: str) -> int:
        counted.append(len(text))
        return budget.fewest(text)  # type: ignore[misc]

    word = ("abcdefghij" * 60_000)[:600_000]  # no space nor punctuation; 30,000 tokens by its length
    budget.refuse_beyond(ask(word), context_size=32_768)
    with pytest.raises(ContextLengthExceeded, match="counted until over"):
        replace(budget, fewest=fewest).count_long(count, word, context_size=32_768)
    assert sum(counted) < 100_000  # the pieces that hold 32,768 tokens, not the 600,000 characters
    with pytest.raises(ContextLengthExceeded, match="counted until over"):
        refuse_oversized(processor, ask(word), context_size=32_768)
    refuse_oversized(processor, ask(word[:20_000]), context_size=32_768)


def test_text_a_template_trims_is_not_counted(processors: dict[str, Any]) -> None:
    processor = processors["gemma3"]  # its template trims each text
    padded = ask("Describe the boats on the water. " * 600 + " " * 1_000_000)
    assert count_prompt(processor, padded).prompt_tokens < 8_192
    refuse_oversized(processor, padded, context_size=8_192)
