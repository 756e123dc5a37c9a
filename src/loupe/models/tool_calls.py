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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from loupe.domain import ToolCall, ToolCallOutput, ToolSpec

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
    """Splits one choice's streamed text into content and calls.

    Text before the first call block streams as content. From a block's opening tag on, text
    is held until the block closes, then it becomes a call if it holds `{"name", "arguments"}`
    (and stays text otherwise). A tag's possible beginning at the end of the text is held back
    until the next piece shows whether it is one.
    """

    format: ToolCallFormat = HERMES
    calls: list[ToolCall] = field(default_factory=list)
    _held: str = ""
    _in_call: bool = False

    def feed(self, text: str) -> Iterator[str | ToolCall]:
        self._held += text
        while True:
            if self._in_call:
                end = self._held.find(self.format.close)
                if end < 0:
                    return
                block, self._held = self._held[:end], self._held[end + len(self.format.close) :]
                self._in_call = False
                yield self._call(block)
                continue
            start = self._held.find(self.format.open.rstrip("\n"))
            if start < 0:
                keep = _partial_suffix(self._held, self.format.open.rstrip("\n"))
                text, self._held = self._held[: len(self._held) - keep], self._held[len(self._held) - keep :]
                if text and not (self.calls and not text.strip()):
                    yield text
                return
            if start:
                before = self._held[:start]
                if not (self.calls and not before.strip()):  # separators between calls are not content
                    yield before
            self._held = self._held[start + len(self.format.open.rstrip("\n")) :]
            self._in_call = True

    def finish(self) -> str:
        """What is left at the end: an unclosed block or a held tag prefix, as text."""
        held = (self.format.open.rstrip("\n") if self._in_call else "") + self._held
        self._held, self._in_call = "", False
        return held

    def _call(self, block: str) -> str | ToolCall:
        as_text = self.format.open.rstrip("\n") + block + self.format.close
        try:
            value = json.loads(block)
        except ValueError:
            return as_text
        if not (isinstance(value, dict) and isinstance(value.get("name"), str) and "arguments" in value):
            return as_text
        arguments = value["arguments"]
        text = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
        call = ToolCall(id=new_call_id(), name=value["name"], arguments=text)
        self.calls.append(call)
        return call


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
