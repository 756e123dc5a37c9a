"""The fewest tokens a text can be written in with a tokenizer's vocabulary: a lower bound on
what its BPE model counts, for text that has no place where the tokenizer provably splits.

A byte-level BPE writes every pre-token as a sequence of vocabulary entries, so no tokenization
of a text is shorter than the shortest way to spell its bytes with those entries. That shortest
spelling is what a Unigram model finds when every entry scores the same (its Viterbi search
maximises the summed score, so it minimises the count), and `tokenizers` runs that search in
Rust, in time linear in the text for a given vocabulary. It ignores the pre-tokenizer's splits,
which can only make it shorter. The added tokens (special tokens) are matched first, exactly as
the tokenizer matches them.

The search tries every entry that matches at each position, so a long run of one character
that the vocabulary has long entries of (`aaaa...` where `a` x 64 is an entry) costs it several
times what the tokenizer takes. A text with such a run is bounded by its length instead
(`chars_per_token`), which is close to its count there, since its entries are long.

Built on first use (a Unigram model of a 150,000-entry vocabulary takes a few tenths of a second
and some tens of MB), since only a text with a very long word ever needs it.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from tokenizers import Tokenizer, models, pre_tokenizers

__all__ = ["FewestTokens", "counts_fewest"]

_RUN = 32  # characters of one kind in a row from which the search may slow down


class FewestTokens:
    """Counts the fewest vocabulary entries a text's bytes can be written with (see above)."""

    def __init__(self, backend: Tokenizer, chars_per_token: int) -> None:
        self._backend, self._chars_per_token = backend, chars_per_token
        self._built: tuple[Tokenizer, re.Pattern[str] | None] | None = None
        self._lock = threading.Lock()

    def __call__(self, text: str) -> int:
        unigram, runs = self._model()
        if runs is not None and runs.search(text):
            return -(-len(text) // self._chars_per_token)
        return len(unigram.encode(text, add_special_tokens=False).ids)

    def _model(self) -> tuple[Tokenizer, re.Pattern[str] | None]:
        if self._built is None:
            with self._lock:
                if self._built is None:
                    self._built = _shortest_spelling(self._backend), _long_runs(self._backend)
        return self._built


def counts_fewest(spec: dict[str, Any]) -> bool:
    """Whether `FewestTokens` bounds this tokenizer (`tokenizer.json` as a dict): a BPE whose
    entries spell what they cover (no word prefixes or suffixes), behind byte-level pre-tokens
    that add no space at the start."""
    model = spec["model"]
    pre = spec.get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", [pre])
    return (
        model["type"] == "BPE"
        and not model.get("continuing_subword_prefix")
        and not model.get("end_of_word_suffix")
        and any(p.get("type") == "ByteLevel" for p in parts)
        and not any(p.get("type") == "ByteLevel" and p.get("add_prefix_space") for p in parts)
    )


def _shortest_spelling(backend: Tokenizer) -> Tokenizer:
    vocab = backend.get_vocab(with_added_tokens=False)
    unigram = Tokenizer(models.Unigram([(entry, -1.0) for entry in vocab], None, False))
    unigram.normalizer = backend.normalizer
    unigram.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    unigram.add_tokens(list(backend.get_added_tokens_decoder().values()))
    return unigram


def _long_runs(backend: Tokenizer) -> re.Pattern[str] | None:
    """A pattern of `_RUN` ASCII characters in a row of which the vocabulary has long entries."""
    byte_of = _byte_level_bytes()
    found = {
        chr(byte_of[entry[0]])
        for entry in backend.get_vocab(with_added_tokens=False)
        if len(entry) >= _RUN and entry[0] in byte_of and byte_of[entry[0]] < 128 and entry == entry[0] * len(entry)
    }
    if not found:
        return None
    return re.compile(f"([{''.join(re.escape(c) for c in sorted(found))}])\\1{{{_RUN - 1}}}")


def _byte_level_bytes() -> dict[str, int]:
    """The byte each character of the byte-level alphabet stands for (GPT-2's mapping: printable
    bytes as themselves, the others shifted past 255)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    shifted = [b for b in range(256) if b not in printable]
    return {chr(b): b for b in printable} | {chr(256 + i): b for i, b in enumerate(shifted)}
