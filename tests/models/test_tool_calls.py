"""The tool-call format: parsing streamed text into content and call pieces, wherever the text is cut."""

from __future__ import annotations

import json

import pytest

from loupe.domain import ToolCall, ToolCallDelta, ToolCallOutput, ToolSpec
from loupe.models.tool_calls import HERMES, ToolCallParser

TEXT = (
    "Let me check.\n<tool_call>\n"
    '{"name": "get_weather", "arguments": {"city": "Oslo"}}'
    "\n</tool_call>\n<tool_call>\n"
    '{"name": "count", "arguments": {"n": 2}}'
    "\n</tool_call>"
)


def cut(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def pieces_of(texts: list[str]) -> list[str | ToolCallDelta]:
    parser = ToolCallParser(index=3)
    return [piece for text in texts for piece in parser.feed(text)] + list(parser.finish())


def joined(pieces: list[str | ToolCallDelta]) -> tuple[str, list[ToolCall]]:
    """Content, and the calls as a client joins their pieces (the first names the call)."""
    content = "".join(p for p in pieces if isinstance(p, str))
    calls: dict[int, ToolCall] = {}
    for piece in pieces:
        if isinstance(piece, str):
            continue
        assert piece.index == 3
        made = calls.get(piece.position)
        if made is None:
            assert piece.id is not None and piece.name is not None
            made = ToolCall(piece.id, piece.name, "")
        else:
            assert piece.id is None and piece.name is None
        calls[piece.position] = ToolCall(made.id, made.name, made.arguments + piece.arguments)
    return content, [calls[i] for i in sorted(calls)]


def parse(texts: list[str]) -> tuple[str, list[ToolCall]]:
    return joined(pieces_of(texts))


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_calls_are_found_however_the_text_is_cut(size: int) -> None:
    content, calls = parse(cut(TEXT, size))
    assert content == "Let me check.\n"
    assert [(c.name, c.arguments) for c in calls] == [("get_weather", '{"city": "Oslo"}'), ("count", '{"n": 2}')]
    assert len({c.id for c in calls}) == 2


def test_arguments_stream_as_the_model_writes_them() -> None:
    opened = '<tool_call>\n{"name": "get_weather", "arguments": {"ci'
    parser = ToolCallParser()
    first = list(parser.feed(opened))
    assert [(p.id is not None, p.name, p.arguments) for p in first if isinstance(p, ToolCallDelta)] == [
        (True, "get_weather", ""),
        (False, None, '{"ci'),
    ]
    assert list(parser.feed('ty": "Oslo"')) == [ToolCallDelta(0, 0, 'ty": "Oslo"')]
    assert list(parser.feed("}}\n</tool_call>")) == [ToolCallDelta(0, 0, "}")]  # the block's own brace is not arguments
    assert parser.calls == 1 and list(parser.finish()) == []


@pytest.mark.parametrize("size", [1, 4, 1000])
def test_strings_in_the_arguments_may_hold_braces_quotes_and_tags(size: int) -> None:
    arguments = '{"q": "a}\\"]{b", "html": "<tool_call> </tool_call>", "list": [{"x": "\\\\"}]}'
    content, calls = parse(cut(f'<tool_call>\n{{"name": "s\\u00e9arch", "arguments": {arguments}}}\n</tool_call>', size))
    assert content == "" and [(c.name, c.arguments) for c in calls] == [("séarch", arguments)]
    assert json.loads(calls[0].arguments)["q"] == 'a}"]{b'


def test_a_block_written_otherwise_is_one_call_once_it_closes() -> None:
    reordered = '<tool_call>\n{"arguments": {"n": 1}, "name": "count"}\n</tool_call>'
    as_string = '<tool_call>\n{"name": "count", "arguments": "{\\"n\\": 1}"}\n</tool_call>'
    for text in (reordered, as_string):
        pieces = pieces_of(cut(text, 2))
        assert len(pieces) == 1 and isinstance(pieces[0], ToolCallDelta)
        assert (pieces[0].name, json.loads(pieces[0].arguments)) == ("count", {"n": 1})


def test_a_call_cut_short_stands_with_the_arguments_written() -> None:
    content, calls = parse(cut('<tool_call>\n{"name": "count", "arguments": {"n": 1', 3))
    assert content == "" and [(c.name, c.arguments) for c in calls] == [("count", '{"n": 1')]


def test_what_follows_the_arguments_in_the_block_is_dropped() -> None:
    content, calls = parse(['<tool_call>\n{"name": "f", "arguments": {}, "extra": [1]}\n</tool_call> ok'])
    assert content == " ok" and [(c.name, c.arguments) for c in calls] == [("f", "{}")]


def test_text_without_calls_passes_through_and_a_lookalike_is_kept() -> None:
    content, calls = parse(["Use <tool", "_call> tags? <b>no</b>"])
    assert calls == [] and content == "Use <tool_call> tags? <b>no</b>"
    content, calls = parse(["<tool_call>\nnot json\n</tool_call> after"])
    assert calls == [] and content == "<tool_call>\nnot json\n</tool_call> after"
    long_name = '<tool_call>\n{"name": "' + "x" * 600
    assert parse([long_name]) == (long_name, [])  # no head to stream: text at the end


def test_an_unclosed_call_is_returned_as_text_at_the_end() -> None:
    assert parse(['<tool_call>\n{"name": "x", "argu']) == ('<tool_call>\n{"name": "x", "argu', [])


def test_a_call_renders_back_into_the_text_it_was_parsed_from() -> None:
    call = ToolCall("call_1", "get_weather", '{"city":"Oslo"}')
    _, calls = parse([HERMES.call_text(call)])
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"city": "Oslo"})]


def test_the_grammar_allows_one_call_unless_parallel() -> None:
    tool = ToolSpec("f", '{"type":"object"}')
    assert "call (" in HERMES.grammar(ToolCallOutput((tool,), parallel=True))
    assert "start: call\n" in HERMES.grammar(ToolCallOutput((tool,), parallel=False))
