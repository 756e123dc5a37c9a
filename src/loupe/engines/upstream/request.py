"""Prompt messages and sampling parameters as an OpenAI chat-completions request body.

Fields at their OpenAI default are left out, and Loupe's extensions (`top_k`, `min_p`,
`repetition_penalty`) are sent only when set: servers differ in which fields they know, and
several (transformers serve among them) refuse a field they do not know even at its default.
vLLM gets two fields of its own besides (`vllm_fields`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import json

from loupe.domain import (
    JsonOutput,
    PreparedImage,
    PreparedVideo,
    PromptMessage,
    Role,
    SamplingParams,
    TextPart,
    ToolCallOutput,
    ToolSpec,
    nested_overrides,
)
from loupe.engines.upstream.video import media_io_kwargs
from loupe.models.tool_calls import tool_object

__all__ = ["chat_body", "openai_messages", "vllm_fields"]

Encoder = Callable[[PreparedImage | PreparedVideo], str]


def openai_messages(messages: Sequence[PromptMessage], encode: Encoder) -> list[dict[str, Any]]:
    """The messages with every prepared image as a data URL at the detail Loupe applied, and
    every prepared video as its sampled frames (see `video`).

    A message of one text part is sent as a plain string, which every server takes for every
    role; the chat template sees the same text either way.
    """
    out: list[dict[str, Any]] = []
    for message in messages:
        parts = [_part(p, encode) for p in message.content]
        turn: dict[str, Any] = {"role": message.role.value}
        if len(parts) == 1 and parts[0]["type"] == "text":
            turn["content"] = parts[0]["text"]
        else:
            turn["content"] = parts or (None if message.tool_calls else "")
        if message.tool_calls:
            turn["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in message.tool_calls
            ]
        if message.role is Role.TOOL:
            turn["tool_call_id"] = message.tool_call_id
        out.append(turn)
    return out


def _part(part: object, encode: Encoder) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if isinstance(part, PreparedImage):
        return {"type": "image_url", "image_url": {"url": encode(part), "detail": part.detail.value}}
    if isinstance(part, PreparedVideo):
        return {"type": "video_url", "video_url": {"url": encode(part)}}
    raise TypeError(f"an upstream prompt needs prepared images and videos, not {type(part).__name__}")


def chat_body(
    model: str,
    messages: list[dict[str, Any]],
    sampling: SamplingParams,
    max_tokens: int,
    *,
    seed: int | None,
    tools: tuple[ToolSpec, ...] = (),
) -> dict[str, Any]:
    """One choice's streamed request: `n` is always 1 (choices are fanned out by the engine).
    Structured outputs, tools, logprobs and logit_bias are sent in OpenAI's fields."""
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": max_tokens,
        "temperature": sampling.temperature,
    }
    optional: dict[str, tuple[Any, Any]] = {
        "top_p": (sampling.top_p, 1.0),
        "frequency_penalty": (sampling.frequency_penalty, 0.0),
        "presence_penalty": (sampling.presence_penalty, 0.0),
        "top_k": (sampling.top_k, 0),
        "min_p": (sampling.min_p, 0.0),
        "repetition_penalty": (sampling.repetition_penalty, 1.0),
        "stop": (list(sampling.stop), []),
        "seed": (seed, None),
        "logprobs": (sampling.logprobs, False),
        "top_logprobs": (sampling.top_logprobs, 0),
        "logit_bias": ({str(t): v for t, v in sampling.logit_bias}, {}),
        "tools": ([tool_object(t) for t in tools], []),
    }
    body.update({name: value for name, (value, default) in optional.items() if value != default})
    body.update(_constraint(sampling.constraint))
    return body


def _constraint(constraint: JsonOutput | ToolCallOutput | None) -> dict[str, Any]:
    """A schema as `response_format`; forced calls as `tool_choice` (named when one function
    alone, one call, may be called)."""
    if isinstance(constraint, JsonOutput):
        schema = {"name": "response", "schema": json.loads(constraint.schema), "strict": True}
        return {"response_format": {"type": "json_schema", "json_schema": schema}}
    if isinstance(constraint, ToolCallOutput):
        if len(constraint.tools) == 1 and not constraint.parallel:
            return {"tool_choice": {"type": "function", "function": {"name": constraint.tools[0].name}}}
        return {"tool_choice": "required", **({} if constraint.parallel else {"parallel_tool_calls": False})}
    return {}


def vllm_fields(messages: Sequence[PromptMessage], add_special_tokens: bool) -> dict[str, Any]:
    """vLLM's own request fields that make it process the prompt Loupe counted.

    `add_special_tokens`: vLLM leaves the tokenizer's special tokens out of chat prompts, where
    Hugging Face's processors add them unless the templated prompt starts with BOS (LLaVA-1.5's
    template has no BOS; its tokenizer adds one). `mm_processor_kwargs`: the processor settings a
    detail level needs (SmolVLM's `low` turns tile splitting off); vLLM takes them only when
    started with `--trust-request-mm-kwargs`, so they are sent only when there are some.
    `media_io_kwargs`: which frames of which file a video's frames are (see `video`).
    """
    fields: dict[str, Any] = {"add_special_tokens": add_special_tokens}
    fields.update(media_io_kwargs([p for m in messages for p in m.content if isinstance(p, PreparedVideo)]))
    overrides = {p.processor_overrides for m in messages for p in m.content if isinstance(p, PreparedImage)}
    overrides.discard(())
    if overrides:
        # One set per request, as with the embedded engine (the service refuses mixed sets).
        fields["mm_processor_kwargs"] = nested_overrides(overrides.pop())
    return fields
