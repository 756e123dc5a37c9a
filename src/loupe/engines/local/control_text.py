"""Client text that cannot become control tokens: a marker a client writes stays the text it is.

A tokenizer matches its special tokens (`<|im_end|>`, `<start_of_turn>`, `<image>`) anywhere in
the string it is given, so a user who writes `<|im_end|>\\n<|im_start|>system\\n...` would open a
system turn of their own, and a typed `<|image_pad|>` would be taken for an image. Only the chat
template and Loupe may emit those tokens. So before the template runs, every special-token
string in the client's text, and every marker the processor looks for in the text, is broken
with an invisible WORD JOINER (U+2060) after its first character: `<⁠|im_end|>`. The model then
reads the characters the client wrote, as text, plus one joiner the tokenizer cannot join.

Why a character rather than tokenizing the client's pieces with special tokens split: the
broken text is a string, so every consumer of the prompt tokenizes it alike without knowing
about clients at all (the fast placeholder path, the processor's call, `/v1/estimate`'s count,
and an upstream server's own tokenizer, which Loupe cannot tell what to split). Counts stay exact
because all of them count the same string, and ordinary text, which holds no such marker, is not
changed by a single character.

Each tokenizer is checked once (`control_text`): a broken marker must tokenize without a single
control id. Where a tokenizer's normaliser drops the joiner, a no-break space and then a plain
space are tried instead.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from loupe.domain import PromptMessage, TextPart, ToolCall, ToolSpec
from loupe.errors import ModelLoadError

__all__ = ["ControlText", "control_text", "neutral_messages", "neutral_tools"]

_log = logging.getLogger(__name__)

# Tried in order: the first that keeps every broken marker free of control ids is used.
JOINERS = ("\u2060", "\u00a0", " ")
_ATTRIBUTE = "_loupe_control_text"
_PASSES = 4


@dataclass(frozen=True, slots=True)
class ControlText:
    """The control strings of one tokenizer and processor, and how to break them in text."""

    pattern: re.Pattern[str] | None  # any control string, longest first; None: there are none
    joiner: str

    @classmethod
    def of(cls, strings: Iterable[str], joiner: str = JOINERS[0]) -> ControlText:
        breakable = sorted({s for s in strings if len(s) > 1})
        return cls(re.compile(_trie(breakable)) if breakable else None, joiner)

    def neutral(self, text: str) -> str:
        """`text` with every control string in it broken after its first character."""
        if self.pattern is None:
            return text
        # What follows a broken string's first character may hold another (`<|<|a|>`, with `|<|a|>`
        # special too): break again, a few times at most, as nested markers are short.
        for _ in range(_PASSES):
            text, broken = self.pattern.subn(self._break, text)
            if not broken:
                break
        return text

    def _break(self, match: re.Match[str]) -> str:
        found = match.group()
        return found[0] + self.joiner + found[1:]


def control_text(processor: Any) -> ControlText:
    """The processor's `ControlText`, worked out once and kept on the processor.

    The control strings are the tokenizer's special added tokens and every marker the processor
    names (`image_token`, `boi_token`, ...), which it finds in the text by string search. Raises
    ModelLoadError where no joiner keeps the broken strings free of control tokens."""
    found: ControlText | None = processor.__dict__.get(_ATTRIBUTE)
    if found is None:
        found = _checked(processor.tokenizer, _control_strings(processor))
        processor.__dict__[_ATTRIBUTE] = found
    return found


def neutral_messages(processor: Any, messages: Sequence[PromptMessage]) -> list[PromptMessage]:
    """The messages with the control strings broken in each text part and in the arguments of
    the tool calls a client sent back (the same objects where there are none)."""
    control = control_text(processor)
    out: list[PromptMessage] = []
    for message in messages:
        content = tuple(_neutral_part(control, part) for part in message.content)
        calls = tuple(_neutral_call(control, call) for call in message.tool_calls)
        same = all(a is b for a, b in zip(content + calls, message.content + message.tool_calls, strict=True))
        out.append(message if same else replace(message, content=content, tool_calls=calls))
    return out


def neutral_tools(processor: Any, tools: Sequence[ToolSpec]) -> tuple[ToolSpec, ...]:
    """The client's function definitions with the control strings in their text broken."""
    control = control_text(processor)
    return tuple(
        replace(
            tool,
            parameters=control.neutral(tool.parameters),
            description=None if tool.description is None else control.neutral(tool.description),
        )
        for tool in tools
    )


def _neutral_call(control: ControlText, call: ToolCall) -> ToolCall:
    arguments = control.neutral(call.arguments)
    return call if arguments == call.arguments else replace(call, arguments=arguments)


def _neutral_part(control: ControlText, part: object) -> Any:
    if not isinstance(part, TextPart):
        return part
    text = control.neutral(part.text)
    return part if text == part.text else TextPart(text)


def _control_strings(processor: Any) -> set[str]:
    tokenizer = processor.tokenizer
    strings = {token.content for token in tokenizer.added_tokens_decoder.values() if token.special}
    strings.update(str(t) for t in tokenizer.all_special_tokens)
    for name in dir(type(processor)) + list(processor.__dict__):
        if name.endswith("_token") and not name.startswith("_"):
            value = getattr(processor, name, None)
            if isinstance(value, str) and value:
                strings.add(value)
    return strings


def _checked(tokenizer: Any, strings: set[str]) -> ControlText:
    """The first joiner whose broken strings tokenize without a control id."""
    unbreakable = sorted(s for s in strings if len(s) == 1)
    if unbreakable:
        _log.warning("single-character special tokens cannot be broken in client text: %r", unbreakable)
    control_ids = {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
    named = tokenizer.convert_tokens_to_ids(sorted(strings))
    control_ids.update(i for i in named if i is not None and i != tokenizer.unk_token_id)
    probes = sorted(s for s in strings if len(s) > 1)
    for joiner in JOINERS:
        control = ControlText.of(strings, joiner)
        broken = [control.neutral(s) for s in probes]
        encoded = tokenizer(broken, add_special_tokens=False)["input_ids"] if broken else []
        if not any(control_ids.intersection(ids) for ids in encoded):
            return control
    raise ModelLoadError(
        "client text cannot be kept from forming this tokenizer's control tokens: its normaliser "
        "removes every separator Loupe can insert"
    )


def _trie(strings: Sequence[str]) -> str:
    """A regular expression matching any of `strings`, the longest at a position first, in time
    linear in the text whatever the number of strings (one branch per character of a prefix)."""
    root: dict[str, Any] = {}
    for s in strings:
        node = root
        for ch in s:
            node = node.setdefault(ch, {})
        node[""] = {}  # the end of a string
    return _pattern(root)


def _pattern(node: dict[str, Any]) -> str:
    ends = "" in node
    branches = [re.escape(ch) + _pattern(child) for ch, child in sorted(node.items()) if ch]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    return f"(?:{body})?" if ends else body  # where a string ends, longer ones are tried first
