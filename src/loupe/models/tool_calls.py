"""Tool calls as model families write them: the prompt convention, the grammar, the parser.

Qwen2.5-VL and Qwen3-VL are trained to call functions by writing, after any text,

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

one block per call, and to read a result inside `<tool_response>` tags in a user turn. Their
chat templates render tools, calls and results themselves (where a checkpoint's template does,
the embedded engine lets it). The other families have no tools format of their own: for them
Loupe uses the same convention, written into the conversation as plain text (`TOOLS_CONVENTION`
below: a system block listing the functions, each call as its block in the assistant turn, each
result as a user turn), documented in docs/vision-guide.md. Plain Python, no torch.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from loupe.domain import ToolCall, ToolCallDelta, ToolCallOutput, ToolSpec

__all__ = ["HERMES", "ToolCallFormat", "ToolCallParser", "format_for", "new_call_id", "tool_object"]


@dataclass(frozen=True, slots=True)
class ToolCallFormat:
    """How one family writes calls: each call's JSON between `open` and `close`. `native`: the
    family's own chat template renders tools in this format, where a checkpoint's template has
    them (otherwise the convention is written into the conversation as text)."""

    native: bool = False
    open: str = "<tool_call>\n"
    close: str = "\n</tool_call>"
    separator: str = "\n"
    result_open: str = "<tool_response>\n"
    result_close: str = "\n</tool_response>"

    def system_block(self, tools: Sequence[ToolSpec]) -> str:
        """The convention's description of the functions, appended to the system turn."""
        listed = "\n".join(json.dumps(tool_object(t), ensure_ascii=False) for t in tools)
        return (
            "# Tools\n\nYou may call one or more of these functions to help with the request. "
            f"Their signatures, one JSON object per line:\n<tools>\n{listed}\n</tools>\n\n"
            "To call a function, answer with a JSON object holding its name and arguments inside "
            f"tags, one block per call:\n{self.open}"
            '{"name": <function-name>, "arguments": <arguments-object>}'
            f"{self.close}"
        )

    def call_text(self, call: ToolCall) -> str:
        """A call as the assistant turn writes it."""
        return f'{self.open}{{"name": {json.dumps(call.name)}, "arguments": {_arguments(call.arguments)}}}{self.close}'

    def result_text(self, content: str) -> str:
        """A tool's result as the user turn that carries it writes it."""
        return f"{self.result_open}{content}{self.result_close}"

    def grammar(self, output: ToolCallOutput) -> str:
        """A Lark grammar (llguidance's dialect) of the calls: each one's arguments valid
        against its function's parameters; several calls only when `output.parallel`."""
        body = {"anyOf": [_call_schema(tool) for tool in output.tools], "x-guidance": {"whitespace_flexible": False}}
        call = f"{json.dumps(self.open)} %json{json.dumps(body)} {json.dumps(self.close)}"
        start = f"call ({json.dumps(self.separator)} call)*" if output.parallel else "call"
        return f"start: {start}\ncall: {call}\n"


_State = Literal["text", "head", "whole", "arguments", "after"]
_NAME = '"<name>"'  # the call's name, a JSON string
_HEAD = ("{", '"name"', ":", _NAME, ",", '"arguments"', ":")
_SPACE = " \t\n\r"
_HEAD_MAX = 512  # characters of a block to look for the head in (OpenAI's names are at most 64)

HERMES = ToolCallFormat()
"""Qwen's blocks, as Loupe's convention for families with no tools format of their own."""

# Families whose published chat templates render tools, calls and results as Qwen's blocks.
_NATIVE = {"qwen2.5-vl": ToolCallFormat(native=True), "qwen3-vl": ToolCallFormat(native=True)}


def format_for(family: str) -> ToolCallFormat:
    """The tool-call format of a family (by the name `/v1/models` reports): Qwen's blocks,
    rendered by the template for Qwen2.5-VL and Qwen3-VL, by Loupe's convention for the others
    (GLM-4V included: its own format is not implemented, so its template is not asked to)."""
    return _NATIVE.get(family, HERMES)


def new_call_id() -> str:
    return "call_" + secrets.token_hex(12)


@dataclass(slots=True)
class ToolCallParser:
    """Splits one choice's streamed text into content and tool-call pieces.

    Text before the first call block streams as content. A block written as the format asks,
    `{"name": ..., "arguments": {...}}`, streams as the model writes it: once the name and the
    start of the arguments object are written, a piece with a new id and the name, then the
    arguments object's text in pieces up to its closing brace (what follows it in the block is
    not part of the call). Such a call stands even if the block never closes or its arguments
    are cut short, as OpenAI's do. A block written otherwise (keys in another order, arguments
    as a string) is held until it closes, then becomes a call in one piece if it holds
    `{"name", "arguments"}`, and stays text if not. A tag's possible beginning at the end of the
    text is held back until the next piece shows whether it is one.
    """

    format: ToolCallFormat = HERMES
    index: int = 0  # the choice's, carried by the pieces
    calls: int = 0  # calls begun so far
    _held: str = ""
    _state: _State = "text"
    _depth: int = 0  # of the arguments object, while it streams
    _in_string: bool = False
    _escaped: bool = False

    def feed(self, text: str) -> Iterator[str | ToolCallDelta]:
        self._held += text
        while True:
            if self._state == "text":
                if not (yield from self._text()):
                    return
                continue
            if self._state == "head":
                yield from self._head()
            if self._state == "arguments":
                yield from self._arguments()
            close = self._held.find(self.format.close)
            if close < 0:
                if self._state == "after":  # what follows the arguments is not kept
                    self._held = self._held[len(self._held) - _partial_suffix(self._held, self.format.close) :]
                return
            if self._state == "whole":
                yield self._whole(self._held[:close])
            self._held, self._state = self._held[close + len(self.format.close) :], "text"

    def finish(self) -> Iterator[str | ToolCallDelta]:
        """What is left at the end: the rest of a streaming call's arguments, or an unclosed
        block or a held tag prefix as text."""
        held, state = self._held, self._state
        self._held, self._state = "", "text"
        if state == "arguments":
            piece = held[: self._value_length(held)]
            if piece:
                yield self._piece(piece)
        elif state in ("head", "whole"):
            yield self._tag + held
        elif state == "text" and held:
            yield held

    @property
    def _tag(self) -> str:
        return self.format.open.rstrip("\n")

    def _text(self) -> Generator[str, None, bool]:
        """Content up to the next block's opening tag; True when a block opened."""
        start = self._held.find(self._tag)
        if start < 0:
            keep = _partial_suffix(self._held, self._tag)
            text, self._held = self._held[: len(self._held) - keep], self._held[len(self._held) - keep :]
            if text and not (self.calls and not text.strip()):  # separators between calls are not content
                yield text
            return False
        before = self._held[:start]
        if before and not (self.calls and not before.strip()):
            yield before
        self._held, self._state = self._held[start + len(self._tag) :], "head"
        return True

    def _head(self) -> Iterator[ToolCallDelta]:
        """A block's beginning: a call to stream once its name and arguments object have begun."""
        close = self._held.find(self.format.close)
        block = self._held if close < 0 else self._held[:close]
        head = _call_head(block)
        if isinstance(head, tuple) and block[head[1]] == "{":
            self.calls += 1
            self._held, self._state = self._held[head[1] :], "arguments"
            self._depth, self._in_string, self._escaped = 0, False, False
            yield ToolCallDelta(self.index, self.calls - 1, id=new_call_id(), name=head[0])
        elif head is False or close >= 0 or len(block) > _HEAD_MAX:
            self._state = "whole"  # written otherwise: parsed once the block closes

    def _arguments(self) -> Iterator[ToolCallDelta]:
        """The arguments object's text, as far as it cannot be the block's closing tag."""
        close = self._held.find(self.format.close)
        end = close if close >= 0 else len(self._held) - _partial_suffix(self._held, self.format.close)
        length = self._value_length(self._held[:end])
        if length:
            yield self._piece(self._held[:length])
        self._held = self._held[end:]

    def _value_length(self, text: str) -> int:
        """How much of `text` continues the arguments object; its end moves the state on."""
        for i, char in enumerate(text):
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif char == "\\":
                    self._escaped = True
                elif char == '"':
                    self._in_string = False
            elif char == '"':
                self._in_string = True
            elif char in "{[":
                self._depth += 1
            elif char in "}]":
                self._depth -= 1
                if self._depth == 0:
                    self._state = "after"
                    return i + 1
        return len(text)

    def _piece(self, arguments: str) -> ToolCallDelta:
        return ToolCallDelta(self.index, self.calls - 1, arguments)

    def _whole(self, block: str) -> str | ToolCallDelta:
        as_text = self._tag + block + self.format.close
        try:
            value = json.loads(block)
        except ValueError:
            return as_text
        if not (isinstance(value, dict) and isinstance(value.get("name"), str) and "arguments" in value):
            return as_text
        arguments = value["arguments"]
        text = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
        self.calls += 1
        return ToolCallDelta.whole(self.index, self.calls - 1, ToolCall(new_call_id(), value["name"], text))


def _call_head(block: str) -> tuple[str, int] | bool | None:
    """Where `{"name": "<name>", "arguments": ` ends in a block, with the name decoded; None
    while the block may still become that, False once it cannot."""
    at, name = 0, ""
    for step in _HEAD:
        while at < len(block) and block[at] in _SPACE:
            at += 1
        rest = block[at:]
        if step == _NAME:
            end = _string_end(rest)
            if end is None:
                return None if rest[:1] in ("", '"') else False
            try:
                name = json.loads(rest[:end])
            except ValueError:
                return False
            at += end
        elif rest.startswith(step):
            at += len(step)
        else:
            return None if step.startswith(rest) else False
    while at < len(block) and block[at] in _SPACE:
        at += 1
    return None if at == len(block) else (name, at)


def _string_end(text: str) -> int | None:
    """The end of the JSON string `text` opens with, past its closing quote; None if unclosed."""
    if not text.startswith('"'):
        return None
    escaped = False
    for i, char in enumerate(text[1:], 1):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            return i + 1
    return None


def _partial_suffix(text: str, tag: str) -> int:
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0


def tool_object(tool: ToolSpec) -> dict[str, object]:
    """A function as OpenAI's `tools` list holds it (what chat templates with tools expect)."""
    function: dict[str, object] = {"name": tool.name}
    if tool.description:
        function["description"] = tool.description
    function["parameters"] = json.loads(tool.parameters)
    return {"type": "function", "function": function}


def _call_schema(tool: ToolSpec) -> dict[str, object]:
    return {
        "type": "object",
        "properties": {"name": {"const": tool.name}, "arguments": json.loads(tool.parameters)},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def _arguments(arguments: str) -> str:
    """Arguments as JSON in the prompt: as sent when they parse, else as a JSON string."""
    try:
        return json.dumps(json.loads(arguments), ensure_ascii=False)
    except ValueError:
        return json.dumps(arguments)
