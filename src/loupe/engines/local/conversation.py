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
    if not tools and not any(m.tool_calls or m.role is Role.TOOL for m in messages):
        return [_plain(m) for m in messages], {}
    if fmt.native and "tools" in str(getattr(processor, "chat_template", None) or ""):
        extra = {"tools": [tool_object(t) for t in tools]} if tools else {}
        return [_native(m) for m in messages], extra
    return _convention(messages, tools, fmt), {}


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


def _convention(messages: Sequence[PromptMessage], tools: Sequence[ToolSpec], fmt: ToolCallFormat) -> Conversation:
    out: Conversation = []
    if tools:
        block = fmt.system_block(tools)
        if messages and messages[0].role is Role.SYSTEM:
            first, rest = messages[0], messages[1:]
            out.append({"role": "system", "content": [*_parts(first), {"type": "text", "text": "\n\n" + block}]})
            messages = rest
        else:
            out.append({"role": "system", "content": [{"type": "text", "text": block}]})
    for message in messages:
        if message.role is Role.TOOL:
            result = {"type": "text", "text": fmt.result_text(_text(message))}
            if out and out[-1].get("tool_results"):  # consecutive results: one user turn
                out[-1]["content"] += [{"type": "text", "text": "\n"}, result]
            else:
                out.append({"role": "user", "content": [result], "tool_results": True})
            continue
        turn = _plain(message)
        if message.tool_calls:
            calls = fmt.separator.join(fmt.call_text(c) for c in message.tool_calls)
            turn["content"] += [{"type": "text", "text": ("\n" if _text(message) else "") + calls}]
        out.append(turn)
    for turn in out:
        turn.pop("tool_results", None)
    return out
