"""The tool-call format: parsing streamed text into content and calls, wherever the text is cut."""

from __future__ import annotations

import json

import pytest

from loupe.domain import ToolCall, ToolCallOutput, ToolSpec
from loupe.models.tool_calls import HERMES, ToolCallParser

TEXT = (
    "Let me check.\n<tool_call>\n"
    '{"name": "get_weather", "arguments": {"city": "Oslo"}}'
    "\n</tool_call>\n<tool_call>\n"
    '{"name": "count", "arguments": {"n": 2}}'
    "\n</tool_call>"
)


def parse(pieces: list[str]) -> tuple[str, list[ToolCall], str]:
    parser = ToolCallParser()
    content, calls = "", []
    for piece in pieces:
        for out in parser.feed(piece):
            if isinstance(out, str):
                content += out
            else:
                calls.append(out)
    return content, calls, parser.finish()


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_calls_are_found_however_the_text_is_cut(size: int) -> None:
    content, calls, tail = parse([TEXT[i : i + size] for i in range(0, len(TEXT), size)])
    assert content == "Let me check.\n" and tail == ""
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"city": "Oslo"}), ("count", {"n": 2})]
    assert len({c.id for c in calls}) == 2


def test_text_without_calls_passes_through_and_a_lookalike_is_kept() -> None:
    content, calls, tail = parse(["Use <tool", "_call> tags? <b>no</b>"])
    assert calls == [] and content + tail == "Use <tool_call> tags? <b>no</b>"[: len(content + tail)]
    content, calls, tail = parse(["<tool_call>\nnot json\n</tool_call> after"])
    assert calls == [] and content == "<tool_call>\nnot json\n</tool_call> after"


def test_an_unclosed_call_is_returned_as_text_at_the_end() -> None:
    content, calls, tail = parse(['<tool_call>\n{"name": "x", "argu'])
    assert calls == [] and content == "" and tail == '<tool_call>\n{"name": "x", "argu'


def test_a_call_renders_back_into_the_text_it_was_parsed_from() -> None:
    call = ToolCall("call_1", "get_weather", '{"city":"Oslo"}')
    _, calls, _ = parse([HERMES.call_text(call)])
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"city": "Oslo"})]


def test_the_grammar_allows_one_call_unless_parallel() -> None:
    tool = ToolSpec("f", '{"type":"object"}')
    assert "call (" in HERMES.grammar(ToolCallOutput((tool,), parallel=True))
    assert "start: call\n" in HERMES.grammar(ToolCallOutput((tool,), parallel=False))
