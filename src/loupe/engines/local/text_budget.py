"""How many tokens a prompt's text must cost at least, known before it is tokenized.

A prompt whose text could not fit the model's context is refused from its length: a tokenizer
has a hard upper bound on the characters one token covers (its longest vocabulary entry, times
what its normaliser may fold into one character), and the chat template adds control tokens
of its own. So `floor` is a true lower bound on the prompt's tokens, computed in microseconds
from `len()` of each text, and a 49 MB body is refused without a tokenizer call.

Text that passes the floor may still be far over the context (ordinary words cost 4 or 5
characters a token, not the 20 to 100 of the longest entry). `count_long` counts a long prompt,
as the template wrote it, in pieces of `PIECE` characters and stops as soon as it is over, so the
work and memory spent on a refused prompt are bounded by the context, not by the body.

Pieces are cut only where the tokenizer itself must split, so their counts add up exactly: at
a space between a non-space character and a letter (`end. Next`), or at an ASCII punctuation
mark other than an apostrophe between two letters (`end.Next`, `well-known`). In the regex
pre-tokenizers of byte-level BPE (GPT-2's, cl100k's, Qwen2's, Llama 3's, o200k's), no pattern
that matches the character before the cut can take the space or the mark (o200k's letters take
a following `'s`, hence no apostrophe), and every one starts a match there, so the cut is a
split whatever precedes or follows; NFC composes neither a space nor ASCII.

A text with no such place in a piece's length (one 600,000-letter word) is cut anyway, between
two ASCII letters or digits (no normaliser composes across that, and no added token's stripping
of spaces reaches over it), and the pieces on either side of such a cut are counted by the fewest
tokens their bytes can be written in (`fewest_tokens.py`), less `slack` for the one token the cut
may split in two: the prompt's own tokens inside such a piece, with the two halves of that token
spelled byte by byte, are one way to write it, so the sum is still a lower bound. Where a piece
has no such pair either, or for tokenizers of other kinds (SentencePiece's Metaspace), the rest
is bounded by the floor alone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from loupe.domain import PlannedImage, PlannedVideo, PreparedImage, PreparedVideo, PromptMessage, Role, TextPart
from loupe.engines.local.fewest_tokens import FewestTokens, counts_fewest
from loupe.engines.local.prompt import templated
from loupe.errors import ContextLengthExceeded

__all__ = ["PIECE", "TextBudget", "refuse_oversized", "text_budget"]

PIECE = 16_384  # characters tokenized at once when a long text is counted (a few MB of tokenizer state)
# Unicode's longest canonical decomposition is 4 code points, so composing (NFC, NFKC) folds at
# most 4 characters into one.
_COMPOSED = 4
_ATTRIBUTE = "_loupe_text_budget"
_LETTER = r"[^\W\d_]"
# Just after the cut: a space after a non-space, or an ASCII mark but ' after a letter; a letter next.
_PLACES = re.compile(rf"(?:(?<=\S) |(?<={_LETTER})[!-&(-/:-@\[-`{{-~])(?={_LETTER})")
_PROBE = "x"
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


@dataclass(frozen=True, slots=True)
class TextBudget:
    """One processor's bounds: characters a token covers at most (None: no bound is known),
    the control tokens its template adds once and per user or assistant turn, whether long
    texts may be counted in pieces, and where they may be cut anywhere: a counter of the fewest
    tokens a text can take, and the tokens one entry split by a cut may cost more (its bytes)."""

    chars_per_token: int | None
    fixed: int = 0
    per_turn: int = 0
    pieces: bool = False
    piece: int = PIECE
    fewest: Callable[[str], int] | None = field(default=None, compare=False, repr=False)
    slack: int = 0
    added: tuple[str, ...] = ()  # the added tokens' texts, which no cut may split

    @property
    def wide(self) -> int:
        """Characters counted at once between cuts made anywhere: enough that `slack` is a
        small part of what they must take."""
        return max(self.piece, 4 * self.slack * (self.slack + 1))

    def floor(self, messages: Sequence[PromptMessage]) -> int:
        """A lower bound on the prompt's tokens, from lengths alone. Text is counted stripped:
        templates may trim it (Gemma's, GLM's)."""
        turns = sum(1 for m in messages if m.role is not Role.SYSTEM)
        images = sum(_media_tokens(p) for m in messages for p in m.content if not isinstance(p, TextPart))
        text = -(-_chars(messages) // self.chars_per_token) if self.chars_per_token else 0
        return self.fixed + self.per_turn * turns + images + text

    def refuse_beyond(self, messages: Sequence[PromptMessage], context_size: int) -> None:
        """Raise ContextLengthExceeded when the text alone cannot fit the context."""
        floor = self.floor(messages)
        if floor >= context_size:
            raise _exceeded(
                f"the prompt is at least {floor} tokens: its {_chars(messages)} characters of text cannot take "
                f"fewer with this model's tokenizer (at most {self.chars_per_token} characters a token)",
                context_size,
            )

    def count_long(self, count: Callable[[str], int], prompt: str, context_size: int) -> None:
        """Raise ContextLengthExceeded where the prompt's text (as templated) is over the
        context, counted piece by piece with `count` and no further than the context; a few
        pieces of work for a text of any length."""
        if self.pieces and len(prompt) > self.piece:
            tokens = self._pieces(count, prompt, context_size)
            if tokens >= context_size:
                raise _exceeded(f"the prompt is at least {tokens} tokens (counted until over)", context_size)

    def _pieces(self, count: Callable[[str], int], text: str, budget: int) -> int:
        """At most the tokens of `text`, counted piece by piece until `budget`: exactly between
        places the tokenizer splits, by the fewest next to a cut made anywhere (see the
        module's docstring); where neither cut is found, the rest is bounded by its length."""
        tokens, start, split = 0, 0, True  # split: the tokenizer splits at `start`
        while start < len(text) and tokens < budget:
            end, at_split = _cut(text, start, self.piece, self.added), True
            if end is None and self.fewest is not None:
                end = len(text) if len(text) - start <= self.wide else _anywhere(text, start, self.wide, self.added)
                at_split = end == len(text)
            if end is None:
                return tokens + (-(-(len(text) - start) // self.chars_per_token) if self.chars_per_token else 0)
            if split and at_split:
                tokens += count(text[start:end])
            else:
                assert self.fewest is not None  # a cut made anywhere needs it
                tokens += self.fewest(text[start:end]) - (0 if at_split else self.slack)
            start, split = end, at_split
        return tokens


def refuse_oversized(processor: Any, messages: Sequence[PromptMessage], context_size: int) -> None:
    """Raise ContextLengthExceeded for a prompt whose text cannot fit `context_size`: from its
    length, then, where a text is long, by counting the templated prompt in pieces (CPU work:
    call it off the event loop). Image markers count one token there, so this is a lower bound."""
    budget = text_budget(processor)
    budget.refuse_beyond(messages, context_size)
    if any(len(p.text) > budget.piece for m in messages for p in m.content if isinstance(p, TextPart)):
        backend = processor.tokenizer.backend_tokenizer
        count = lambda text: len(backend.encode(text, add_special_tokens=False))  # noqa: E731
        budget.count_long(count, templated(processor, messages), context_size)


def text_budget(processor: Any) -> TextBudget:
    """The processor's `TextBudget`, worked out once (a few template renders) and kept on it."""
    found: TextBudget | None = processor.__dict__.get(_ATTRIBUTE)
    if found is None:
        tokenizer = processor.tokenizer
        spec = json.loads(tokenizer.backend_tokenizer.to_str())
        chars = chars_per_token(spec, tokenizer.get_vocab())
        fixed, per_turn = _template_tokens(processor)
        pieces = chars is not None and _cuts_are_splits(spec)
        backend = tokenizer.backend_tokenizer
        fewest = FewestTokens(backend, chars) if chars and pieces and counts_fewest(spec) else None
        slack = max(map(len, backend.get_vocab(with_added_tokens=False))) - 1 if fewest else 0  # a byte a character
        added = tuple(t.content for t in backend.get_added_tokens_decoder().values())
        found = TextBudget(chars, fixed, per_turn, pieces, fewest=fewest, slack=slack, added=added)
        processor.__dict__[_ATTRIBUTE] = found
    return found


def chars_per_token(spec: dict[str, Any], vocab: dict[str, int]) -> int | None:
    """The most characters of input one token can stand for, from the tokenizer's description
    (`tokenizer.json`) and vocabulary; None where a part of it may drop characters (a WordPiece
    splitting on whitespace, a normaliser that strips, unknown characters fused into one token)."""
    shrink = _shrink(spec.get("normalizer"))
    if shrink is None or not _keeps(spec.get("pre_tokenizer")) or not _covers(spec["model"], spec, vocab):
        return None
    # A byte-level entry is one character per byte, and a character is at least a byte; other
    # entries spell what they cover (`▁the`), or more (`<0x41>`, `##ing`).
    return max(len(token) for token in vocab) * shrink


def _shrink(normalizer: dict[str, Any] | None) -> int | None:
    """How many input characters a normaliser may fold into one; None where unbounded."""
    if normalizer is None:
        return 1
    kind = normalizer["type"]
    if kind == "Sequence":
        total = 1
        for part in normalizer["normalizers"]:
            factor = _shrink(part)
            if factor is None:
                return None
            total *= factor
        return total
    if kind in {"NFD", "NFKD", "Lowercase", "Prepend", "ByteLevel"}:
        return 1
    if kind in {"NFC", "NFKC"}:
        return _COMPOSED
    if kind == "Replace" and "String" in normalizer["pattern"] and normalizer["content"]:
        return -(-len(normalizer["pattern"]["String"]) // len(normalizer["content"]))
    return None  # Strip, StripAccents, BertNormalizer, Precompiled, a regex Replace: may remove


def _keeps(pre: dict[str, Any] | None) -> bool:
    """Whether a pre-tokenizer keeps every character (splits without removing)."""
    if pre is None:
        return True
    kind = pre["type"]
    if kind == "Sequence":
        return all(_keeps(p) for p in pre["pretokenizers"])
    if kind in {"Split", "Punctuation"}:
        return bool(pre.get("behavior") != "Removed")
    return kind in {"ByteLevel", "Metaspace", "Digits", "UnicodeScripts"}


def _covers(model: dict[str, Any], spec: dict[str, Any], vocab: dict[str, int]) -> bool:
    """Whether the model gives every character a token of its own or a share of one."""
    if model.get("byte_fallback"):
        return True
    if model["type"] != "BPE":
        return False  # WordPiece's unknown word and Unigram's fused unknowns are one token
    if _byte_level(spec):
        from tokenizers.pre_tokenizers import ByteLevel

        return all(ch in vocab for ch in ByteLevel.alphabet())
    return model.get("unk_token") is not None and not model.get("fuse_unk")


def _byte_level(spec: dict[str, Any]) -> bool:
    def has(part: dict[str, Any] | None) -> bool:
        if part is None:
            return False
        inner = part.get("pretokenizers") or part.get("normalizers") or []
        return part["type"] == "ByteLevel" or any(has(p) for p in inner)

    return has(spec.get("pre_tokenizer")) or has(spec.get("normalizer"))


def _cuts_are_splits(spec: dict[str, Any]) -> bool:
    """Whether `_cut`'s positions split this tokenizer's input: byte-level BPE behind a regex
    split (see the module's docstring), with no normaliser but NFC, which never composes a space."""
    pre = spec.get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", [pre])
    regex = any(p.get("type") == "Split" and "Regex" in p.get("pattern", {}) for p in parts) or any(
        p.get("type") == "ByteLevel" and p.get("use_regex") for p in parts
    )
    allowed = {"Split", "ByteLevel", "Digits"}
    normalizer = spec.get("normalizer")
    return (
        spec["model"]["type"] == "BPE"
        and regex
        and all(p.get("type") in allowed for p in parts)
        and (normalizer is None or normalizer["type"] == "NFC")
    )


def _cut(text: str, start: int, piece: int, added: tuple[str, ...] = ()) -> int | None:
    """Where the piece from `start` ends: the end of `text`, or the last place to cut (see the
    module's docstring) in the second half of a piece's length; None if there is none."""
    if len(text) - start <= piece:
        return len(text)
    places = [m.start() for m in _PLACES.finditer(text, start + piece // 2, start + piece + 1)]
    # `_LETTER` also takes numbers such as "²", which are not letters (\p{L}) to the tokenizer.
    letters = (
        at
        for at in reversed(places)
        if text[at + 1].isalpha() and (text[at] == " " or text[at - 1].isalpha()) and not _splits(text, at, added)
    )
    return next(letters, None)


def _anywhere(text: str, start: int, wide: int, added: tuple[str, ...] = ()) -> int | None:
    """The last place between two ASCII letters or digits in the second half of `wide`
    characters from `start`; None if there is none."""
    for at in range(min(start + wide, len(text) - 1), start + wide // 2, -1):
        if text[at - 1] in _ALNUM and text[at] in _ALNUM and not _splits(text, at, added):
            return at
    return None


def _splits(text: str, at: int, added: tuple[str, ...]) -> bool:
    """Whether cutting before `at` splits an added token (`<|im_start|>`, `<start_of_turn>`),
    which the tokenizer matches whole."""
    return any(text.find(token, max(at - len(token) + 1, 0), at + len(token) - 1) >= 0 for token in added)


def _template_tokens(processor: Any) -> tuple[int, int]:
    """The special tokens the chat template adds once per prompt and per user or assistant turn
    (at least: the fewest of a prompt with and without a system turn); zeros if it cannot say."""
    special = {i for i, t in processor.tokenizer.added_tokens_decoder.items() if t.special}

    def specials(*roles: str) -> int:
        conversation = [{"role": r, "content": [{"type": "text", "text": _PROBE}]} for r in roles]
        text = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
        return sum(1 for i in processor.tokenizer(text, add_special_tokens=False)["input_ids"] if i in special)

    try:
        one, three, system = specials("user"), specials("user", "assistant", "user"), specials("system", "user")
    except Exception:  # a template that refuses these shapes tells nothing; the bound stays sound
        return 0, 0
    per_turn = max(0, (three - one) // 2)
    return max(0, min(one, system) - per_turn), per_turn


def _chars(messages: Sequence[PromptMessage]) -> int:
    return sum(len(p.text.strip()) for m in messages for p in m.content if isinstance(p, TextPart))


def _exceeded(what: str, context_size: int) -> ContextLengthExceeded:
    return ContextLengthExceeded(
        f"{what}, and leaves no room in the model's context of {context_size} tokens; "
        "shorten the text or the conversation",
        param="messages",
    )


def _media_tokens(part: PreparedImage | PlannedImage | PreparedVideo | PlannedVideo) -> int:
    """The placeholders an image or video part is planned to take."""
    return part.frames.tokens if isinstance(part, PlannedVideo | PreparedVideo) else part.tokens
