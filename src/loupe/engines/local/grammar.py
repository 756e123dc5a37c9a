"""Grammar-constrained decoding with llguidance: constraints compiled once, a matcher per sequence.

llguidance was chosen over xgrammar by measurement (docs/internals.md): it names the JSON Schema
keywords it cannot enforce (a 400 naming them, where xgrammar accepts `not`, `if` or
`uniqueItems` and ignores them), compiles a typical extraction schema in a few milliseconds
(lazily, as tokens need it), and is a small wheel with no dependencies.

A constraint is compiled into a template matcher, kept in a bounded LRU keyed by the grammar's
text; each constrained sequence advances its own copy. Token masks cover the model's logits,
whose width may exceed the tokenizer's vocabulary (embedding rows padded to a multiple): the
ids past the tokenizer are never allowed.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import llguidance
import llguidance.hf
import torch

from loupe.domain import Constraint, JsonOutput, ToolCallOutput
from loupe.errors import InvalidRequest

# Compact JSON: a random or confused model cannot spend its budget on whitespace.
_JSON_DEFAULTS: Any = {"whitespace_flexible": False}
_UNIMPLEMENTED = re.compile(r"Unimplemented keys: \[(.*?)\]")

ToolGrammar = Callable[[ToolCallOutput], str]
"""A family's tool-call format as a grammar in llguidance's Lark dialect (see `tool_calls`)."""


class GrammarState:
    """One sequence's place in its grammar."""

    __slots__ = ("matcher",)

    def __init__(self, matcher: llguidance.LLMatcher) -> None:
        self.matcher = matcher

    def advance(self, token: int) -> None:
        """Take the sampled token; it was allowed by the mask, so the grammar accepts it (an eos
        token ends the grammar)."""
        self.matcher.consume_token(token)


class Grammars:
    """Compiles constraints for one model's tokenizer and hands out matchers; thread-safe."""

    def __init__(
        self, tokenizer: Any, width: int, eos: Iterable[int], tool_grammar: ToolGrammar | None, cache_entries: int = 256
    ) -> None:
        self._tokenizer = tokenizer
        self._width = width
        self._eos = sorted(eos)
        self._tool_grammar = tool_grammar
        self._entries = cache_entries
        self._compiled: OrderedDict[str, llguidance.LLMatcher] = OrderedDict()
        self._lock = threading.Lock()
        self._ll_tokenizer: llguidance.LLTokenizer | None = None
        self.compilations = 0  # grammars compiled (not found in the cache)

    def check(self, constraint: Constraint) -> None:
        """Compile the constraint (or find it compiled). Raises InvalidRequest for a grammar
        the library cannot enforce, naming the keywords it does not implement."""
        self._template(constraint)

    def state(self, constraint: Constraint) -> GrammarState:
        """A fresh matcher at the start of the constraint's grammar."""
        return GrammarState(self._template(constraint).deep_copy())

    def fill(self, states: Sequence[GrammarState]) -> torch.Tensor:
        """The allowed-token bitmask of each state, one int32 row of `width` bits each."""
        words = (self._width + 31) // 32
        bitmask = torch.empty((len(states), words), dtype=torch.int32)
        for row, state in enumerate(states):
            state.matcher.unsafe_compute_mask_ptr(bitmask[row].data_ptr(), words * 4)
        return bitmask

    def _template(self, constraint: Constraint) -> llguidance.LLMatcher:
        grammar = self._grammar(constraint)
        with self._lock:
            template = self._compiled.get(grammar)
            if template is not None:
                self._compiled.move_to_end(grammar)
                return template
        # Compiled outside the lock: the inference thread takes matchers of other grammars
        # meanwhile. Two threads compiling the same grammar at once both succeed.
        template = self._compile(grammar, constraint)
        with self._lock:
            self._compiled[grammar] = template
            if len(self._compiled) > self._entries:
                self._compiled.popitem(last=False)
        return template

    def _grammar(self, constraint: Constraint) -> str:
        if isinstance(constraint, JsonOutput):
            return str(llguidance.LLMatcher.grammar_from_json_schema(constraint.schema, defaults=_JSON_DEFAULTS))
        if self._tool_grammar is None:
            raise InvalidRequest("this model has no tool-call format", param="tools")
        return str(llguidance.LLMatcher.grammar_from_lark(self._tool_grammar(constraint)))

    def _compile(self, grammar: str, constraint: Constraint) -> llguidance.LLMatcher:
        failed, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar, self._ll())
        matcher = None if failed else llguidance.LLMatcher(self._ll(), grammar)
        if matcher is None or matcher.is_error():
            detail = "; ".join(messages) if failed else (matcher.get_error() if matcher else "")
            raise _refusal(detail, constraint)
        self.compilations += 1
        return matcher

    def _ll(self) -> llguidance.LLTokenizer:
        if self._ll_tokenizer is None:  # about a second for a 150k vocabulary: once per model
            self._ll_tokenizer = llguidance.hf.from_tokenizer(self._tokenizer, n_vocab=self._width, eos_token=self._eos)
        return self._ll_tokenizer


def apply(logits: torch.Tensor, bitmask: torch.Tensor) -> None:
    """Disallowed tokens of each row to -inf, in place (`logits` [rows, width] float32).

    (llguidance.torch has the same, but importing it runs torch.compile.)"""
    bits = torch.arange(32, dtype=torch.int32, device=bitmask.device)
    allowed = ((bitmask.unsqueeze(-1) >> bits) & 1).bool().view(bitmask.shape[0], -1)
    logits.masked_fill_(~allowed[:, : logits.shape[-1]], float("-inf"))


def _refusal(detail: str, constraint: Constraint) -> InvalidRequest:
    param = "response_format.json_schema.schema" if isinstance(constraint, JsonOutput) else "tools"
    keys = _UNIMPLEMENTED.search(detail)
    if keys:
        names = ", ".join(json.loads(f"[{keys.group(1)}]"))
        return InvalidRequest(
            f"the JSON schema uses {names}, which constrained decoding cannot enforce; "
            "remove it or express the rule another way",
            param=param,
        )
    return InvalidRequest(f"the JSON schema cannot be used for constrained decoding: {detail[:300]}", param=param)
