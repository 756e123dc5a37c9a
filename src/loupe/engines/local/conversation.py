"""Prompt messages as the conversation a chat template iterates, tools included.

A checkpoint of a family whose template knows tools in the format Loupe parses (Qwen2.5-VL,
Qwen3-VL), whose template mentions `tools`, gets them as the template expects: the function list as `tools`, assistant turns with `tool_calls`,
`tool` turns with their results. Any other template sees Loupe's convention as plain text
(see `loupe.models.tool_calls`): the functions in a system turn, calls written in the
assistant's turn, results as user turns.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from loupe.domain import PlannedVideo, PreparedVideo, PromptMessage, Role, TextPart, ToolCall, ToolSpec
from loupe.models.tool_calls import ToolCallFormat, tool_object

Conversation = list[dict[str, Any]]


def conversation(
    processor: Any, messages: Sequence[PromptMessage], tools: Sequence[ToolSpec], fmt: ToolCallFormat
) -> tuple[Conversation, dict[str, Any]]:
    """The conversation and the extra template arguments (`tools`) for these messages."""
    if not uses_tools(messages, tools):
        return [_plain(m) for m in messages], {}
    if renders_tools(processor, fmt):
        extra = {"tools": [tool_object(t) for t in tools]} if tools else {}
        return [_native(m) for m in messages], extra
    return [_plain(m) for m in convention_messages(messages, tools, fmt)], {}


def uses_tools(messages: Sequence[PromptMessage], tools: Sequence[ToolSpec]) -> bool:
    """Whether the request offers functions or its history holds calls or results."""
    return bool(tools) or any(m.tool_calls or m.role is Role.TOOL for m in messages)


def renders_tools(processor: Any, fmt: ToolCallFormat) -> bool:
    """Whether the checkpoint's template renders tools itself, in the format Loupe parses."""
    return fmt.native and "tools" in str(getattr(processor, "chat_template", None) or "")


def _parts(message: PromptMessage) -> list[dict[str, Any]]:
    return [_part(p) for p in message.content]


def _part(part: object) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    return {"type": "video"} if isinstance(part, PreparedVideo | PlannedVideo) else {"type": "image"}


def _text(message: PromptMessage) -> str:
    return "".join(p.text for p in message.content if isinstance(p, TextPart))


def _plain(message: PromptMessage) -> dict[str, Any]:
    return {"role": message.role.value, "content": _parts(message)}


def _native(message: PromptMessage) -> dict[str, Any]:
    if message.role is Role.TOOL:
        return {"role": "tool", "content": _text(message), "tool_call_id": message.tool_call_id}
    turn = _plain(message)
    if message.tool_calls:
        turn["tool_calls"] = [_native_call(c) for c in message.tool_calls]
    return turn


def _native_call(call: ToolCall) -> dict[str, Any]:
    try:
        arguments: Any = json.loads(call.arguments)
    except ValueError:
        arguments = call.arguments
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": arguments}}


def convention_messages(
    messages: Sequence[PromptMessage], tools: Sequence[ToolSpec], fmt: ToolCallFormat
) -> list[PromptMessage]:
    """The messages with Loupe's convention written into them as text: the functions in the
    system turn, each call in its assistant turn, each run of results as one user turn. What a
    template without tools renders (the embedded engine's, or an upstream's, which is sent them)."""
    out: list[PromptMessage] = []
    if tools:
        block = TextPart(fmt.system_block(tools))
        if messages and messages[0].role is Role.SYSTEM:
            first, messages = messages[0], messages[1:]
            out.append(PromptMessage(Role.SYSTEM, (*first.content, TextPart("\n\n" + block.text))))
        else:
            out.append(PromptMessage(Role.SYSTEM, (block,)))
    results = False  # whether out[-1] is a user turn of results
    for message in messages:
        if message.role is Role.TOOL:
            result = TextPart(fmt.result_text(_text(message)))
            if results:  # consecutive results: one user turn
                out[-1] = PromptMessage(Role.USER, (*out[-1].content, TextPart("\n"), result))
            else:
                out.append(PromptMessage(Role.USER, (result,)))
            results = True
            continue
        results = False
        if message.tool_calls:
            calls = fmt.separator.join(fmt.call_text(c) for c in message.tool_calls)
            text = TextPart(("\n" if _text(message) else "") + calls)
            message = PromptMessage(message.role, (*message.content, text))
        out.append(PromptMessage(message.role, message.content))
    return out
