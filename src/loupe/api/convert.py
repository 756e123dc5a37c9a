"""Wire schemas to domain values and back: the only place the two meet."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Literal

from loupe.api import schemas as wire
from loupe.domain import (
    ChatRequest,
    ContentPart,
    Detail,
    Estimate,
    FinishReason,
    ImageRef,
    JsonOutput,
    Message,
    ModelCard,
    PlannedVideo,
    Role,
    SamplingParams,
    TextPart,
    TokenLogprob,
    ToolCall,
    ToolCallDelta,
    ToolCallOutput,
    ToolSpec,
    Usage,
    VideoRef,
)
from loupe.errors import InvalidRequest
from loupe.service.chat import ChatRun, Completion

_ROLES = {
    "system": Role.SYSTEM,
    "developer": Role.SYSTEM,
    "user": Role.USER,
    "assistant": Role.ASSISTANT,
    "tool": Role.TOOL,
}
_DETAILS = {d.value: d for d in Detail}
# Below this, sampling is greedy (as vLLM does): dividing logits by a smaller temperature
# overflows float32, and the distribution is already all on the arg-max.
GREEDY_BELOW = 1e-5


def to_domain(body: wire.ChatCompletionRequest, *, max_choices: int) -> ChatRequest:
    """Validate what pydantic cannot and build the domain request. Raises InvalidRequest."""
    refused = wire.unsupported_fields(body.model_extra or {})
    if refused:
        raise InvalidRequest(
            f"unsupported field {refused[0]!r}: Loupe does not implement it; remove it from the request",
            param=refused[0],
        )
    if body.n > max_choices:
        raise InvalidRequest(f"n must be at most {max_choices}", param="n")
    if body.store:
        raise InvalidRequest(
            "store: true is not supported: Loupe keeps no completions; send false or leave it out", param="store"
        )
    if body.stream_options is not None and not body.stream:
        raise InvalidRequest("stream_options is only allowed when stream is true", param="stream_options")
    messages = tuple(_message(i, m) for i, m in enumerate(body.messages))
    tools, forced = _tools(body)
    sampling = _sampling(body)
    if forced is not None:
        if sampling.constraint is not None:
            raise InvalidRequest(
                "a required or named tool_choice cannot be combined with response_format", param="response_format"
            )
        sampling = replace(sampling, constraint=forced)
    return ChatRequest(
        model=body.model,
        messages=messages,
        sampling=sampling,
        tools=tools,
        stream=body.stream,
        include_usage=bool(body.stream_options and body.stream_options.include_usage),
        user=None if body.user is None else _text(body.user, "user"),
        safety_identifier=None if body.safety_identifier is None else _text(body.safety_identifier, "safety_identifier"),
        metadata=tuple(sorted((_text(k, "metadata"), _text(v, f"metadata.{k}")) for k, v in (body.metadata or {}).items())),
    )


def _sampling(body: wire.ChatCompletionRequest) -> SamplingParams:
    stop = body.stop if isinstance(body.stop, list) else [body.stop] if body.stop else []
    if any(s == "" for s in stop):
        raise InvalidRequest("stop sequences must not be empty strings", param="stop")
    for s in stop:
        _text(s, "stop")
    max_tokens = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
    if body.top_logprobs and not body.logprobs:
        raise InvalidRequest("top_logprobs needs logprobs set to true", param="top_logprobs")
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=body.temperature if body.temperature >= GREEDY_BELOW else 0.0,
        top_p=body.top_p,
        top_k=max(body.top_k, 0),
        min_p=body.min_p,
        repetition_penalty=body.repetition_penalty,
        frequency_penalty=body.frequency_penalty,
        presence_penalty=body.presence_penalty,
        stop=tuple(stop),
        seed=body.seed,
        n=body.n,
        logprobs=bool(body.logprobs),
        top_logprobs=body.top_logprobs or 0,
        logit_bias=_logit_bias(body.logit_bias),
        constraint=_response_format(body.response_format),
    )


def _response_format(fmt: wire.ResponseFormat | None) -> JsonOutput | None:
    """json_object: any JSON object; json_schema: a value valid against the schema (absent: any)."""
    if fmt is None or fmt.type == "text":
        if fmt is not None and fmt.json_schema is not None:
            raise InvalidRequest("json_schema is only allowed with type json_schema", param="response_format.json_schema")
        return None
    if fmt.type == "json_object":
        return JsonOutput(schema='{"type":"object"}')
    if fmt.json_schema is None:
        raise InvalidRequest("response_format of type json_schema needs json_schema", param="response_format.json_schema")
    schema = fmt.json_schema.json_schema
    return JsonOutput(schema=json.dumps({} if schema is None else schema, sort_keys=True, separators=(",", ":")))


def _logit_bias(bias: dict[str, float] | None) -> tuple[tuple[int, float], ...]:
    """Token ids as integers; whether each is in the model's vocabulary is the service's check."""
    out = []
    for key, value in (bias or {}).items():
        if not key.isdigit():
            raise InvalidRequest(f"logit_bias keys are token ids; {key!r} is not one", param=f"logit_bias.{key}")
        out.append((int(key), value))
    return tuple(sorted(out))


def _tools(body: wire.ChatCompletionRequest) -> tuple[tuple[ToolSpec, ...], ToolCallOutput | None]:
    """The tools shown to the model, and the constraint a required or named choice makes."""
    choice = body.tool_choice
    if not body.tools:
        if choice is not None and choice != "none":
            raise InvalidRequest("tool_choice needs tools", param="tool_choice")
        return (), None
    specs = tuple(_tool(i, t) for i, t in enumerate(body.tools))
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise InvalidRequest("tool names must be unique", param="tools")
    if choice == "none":
        return (), None
    parallel = body.parallel_tool_calls is not False
    if choice == "required":
        return specs, ToolCallOutput(specs, parallel)
    if isinstance(choice, wire.NamedToolChoice):
        named = [s for s in specs if s.name == choice.function.name]
        if not named:
            raise InvalidRequest(
                f"tool_choice names {choice.function.name!r}, which is not among the tools",
                param="tool_choice.function.name",
            )
        return specs, ToolCallOutput(tuple(named), parallel=False)
    return specs, None


def _tool(index: int, tool: wire.Tool) -> ToolSpec:
    parameters = tool.function.parameters if tool.function.parameters is not None else {"type": "object"}
    description = tool.function.description
    return ToolSpec(
        name=tool.function.name,
        parameters=json.dumps(parameters, sort_keys=True, separators=(",", ":")),
        description=None if description is None else _text(description, f"tools[{index}].function.description"),
    )


def _message(index: int, message: wire.ChatMessage) -> Message:
    where = f"messages[{index}]"
    role = _ROLES.get(message.role)
    if role is None:
        raise InvalidRequest(
            f"unknown role {message.role!r}; use one of system, user, assistant, tool", param=f"{where}.role"
        )
    calls = tuple(
        ToolCall(c.id, c.function.name, _text(c.function.arguments, f"{where}.tool_calls[{k}].function.arguments"))
        for k, c in enumerate(message.tool_calls or ())
    )
    if calls and role is not Role.ASSISTANT:
        raise InvalidRequest("only assistant messages carry tool_calls", param=f"{where}.tool_calls")
    if role is Role.TOOL and not message.tool_call_id:
        raise InvalidRequest("a tool message needs the tool_call_id it answers", param=f"{where}.tool_call_id")
    if message.content is None:
        if not calls:
            raise InvalidRequest("content is required unless the message carries tool_calls", param=f"{where}.content")
        return Message(role=role, content=(), tool_calls=calls)
    if isinstance(message.content, str):
        text = TextPart(_text(message.content, f"{where}.content"))
        return Message(role=role, content=(text,), tool_calls=calls, tool_call_id=message.tool_call_id)
    parts: list[ContentPart] = []
    for j, part in enumerate(message.content):
        if isinstance(part, wire.TextContent):
            parts.append(TextPart(_text(part.text, f"{where}.content[{j}].text")))
            continue
        if isinstance(part, wire.VideoContent):
            parts.append(_video(part.video_url, role, f"{where}.content[{j}].video_url"))
            continue
        param = f"{where}.content[{j}].image_url"
        if role is not Role.USER:
            raise InvalidRequest(f"images are only allowed in user messages, not {message.role}", param=param)
        parts.append(ImageRef(url=part.image_url.url, detail=_detail(part.image_url.detail, param), param=param))
    return Message(role=role, content=tuple(parts), tool_calls=calls, tool_call_id=message.tool_call_id)


def _video(video: wire.VideoUrl, role: Role, param: str) -> VideoRef:
    if role is not Role.USER:
        raise InvalidRequest(f"videos are only allowed in user messages, not {role.value}", param=param)
    return VideoRef(
        url=video.url, detail=_detail(video.detail, param), param=param, fps=video.fps, max_frames=video.max_frames
    )


def _text(value: str, param: str) -> str:
    """`value`, unless it holds a lone UTF-16 surrogate (JSON's "\\ud800" escape), which is not
    a character and which no tokenizer or database can encode: refused, naming where."""
    if value.isascii():  # O(1): CPython keeps the flag
        return value
    try:
        value.encode("utf-8")  # a few ns a character, where a regex search takes 15
    except UnicodeEncodeError as exc:
        raise InvalidRequest(
            f"{param} holds a lone UTF-16 surrogate (U+{ord(value[exc.start]):04X}) at character "
            f"{exc.start}, which is not text; send valid Unicode",
            param=param,
        ) from None
    return value


def _detail(value: str | None, param: str) -> Detail | None:
    if value is None:
        return None
    detail = _DETAILS.get(value)
    if detail is None:
        raise InvalidRequest(f"unknown detail {value!r}; use low, high or auto", param=f"{param}.detail")
    return detail


def completion_to_wire(run: ChatRun, done: Completion) -> wire.ChatCompletion:
    return wire.ChatCompletion(
        id=run.id,
        created=run.created,
        model=run.request.model,
        choices=[
            wire.Choice(
                index=i,
                message=_assistant(text, done.tool_calls[i] if done.tool_calls else ()),
                finish_reason=finish_to_wire(reason),
                logprobs=logprobs_to_wire(done.logprobs[i]) if run.request.sampling.logprobs else None,
            )
            for i, (text, reason) in enumerate(zip(done.texts, done.finish_reasons, strict=True))
        ],
        usage=usage_to_wire(done.usage),
        system_fingerprint=run.engine.card.fingerprint,
    )


def _assistant(text: str, calls: Sequence[ToolCall]) -> wire.AssistantMessage:
    if not calls:
        return wire.AssistantMessage(content=text)
    return wire.AssistantMessage(content=text or None, tool_calls=[call_to_wire(c) for c in calls])


def call_to_wire(call: ToolCall) -> wire.ToolCallObject:
    return wire.ToolCallObject(id=call.id, function=wire.FunctionCall(name=call.name, arguments=call.arguments))


def call_chunk_to_wire(piece: ToolCallDelta) -> wire.ToolCallChunk:
    first = piece.id is not None
    return wire.ToolCallChunk(
        index=piece.position,
        id=piece.id,
        type="function" if first else None,
        function=wire.FunctionCallChunk(name=piece.name, arguments=piece.arguments),
    )


def finish_to_wire(reason: FinishReason) -> Literal["stop", "length", "tool_calls"]:
    return "length" if reason == "length" else "tool_calls" if reason == "tool_calls" else "stop"


def logprobs_to_wire(entries: Sequence[TokenLogprob]) -> wire.ChoiceLogprobs:
    return wire.ChoiceLogprobs(
        content=[
            wire.TokenLogprobObject(
                token=e.token,
                logprob=e.logprob,
                bytes=list(e.bytes),
                top_logprobs=[wire.TopLogprobObject(token=t.token, logprob=t.logprob, bytes=list(t.bytes)) for t in e.top],
            )
            for e in entries
        ]
    )


def usage_to_wire(usage: Usage) -> wire.CompletionUsage:
    return wire.CompletionUsage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
        prompt_tokens_details=wire.PromptTokensDetails(
            image_tokens=usage.image_tokens,
            text_tokens=usage.text_tokens,
            cached_tokens=usage.cached_tokens,
            video_tokens=usage.video_tokens,
        ),
    )


MODEL_TYPE, MODEL_SUB_TYPE = "text", "chat"


def model_to_wire(card: ModelCard) -> wire.ModelObject:
    return wire.ModelObject(
        id=card.id,
        created=card.created,
        owned_by=card.owned_by,
        type=MODEL_TYPE,
        sub_type=MODEL_SUB_TYPE,
        family=card.family,
        context_size=card.context_size,
        max_images=card.max_images,
        max_videos=card.max_videos,
        currency=card.prices.currency,
        input_token_price_per_m=money(card.prices.input_per_m),
        output_token_price_per_m=money(card.prices.output_per_m),
        detail_rules=[wire.DetailRuleObject(detail=r.detail, rule=r.rule, tokens=r.tokens) for r in card.detail_rules],
        capabilities={"vision": True, "video": card.max_videos > 0, "streaming": True, "multi_image": card.max_images > 1},
    )


def money(value: Decimal) -> str:
    """A decimal string without exponent or trailing zeros: "0.00012", "3"."""
    text = format(value.normalize(), "f")
    return text


def _planned_video(video: PlannedVideo) -> wire.PlannedVideoObject:
    frames = video.frames
    return wire.PlannedVideoObject(
        index=video.index,
        width=frames.original_width,
        height=frames.original_height,
        duration_s=round(frames.duration_s, 3),
        fps=round(frames.video_fps, 3),
        frames=len(frames.indices),
        detail=video.detail.value if video.detail else None,
        detail_applied=frames.detail.value,
        resized_width=frames.width,
        resized_height=frames.height,
        tokens=frames.tokens,
    )


def estimate_to_wire(estimate: Estimate) -> wire.EstimateObject:
    return wire.EstimateObject(
        model=estimate.model,
        prompt_tokens=estimate.prompt_tokens,
        text_tokens=estimate.text_tokens,
        image_tokens=estimate.image_tokens,
        images=[
            wire.PlannedImageObject(
                index=i.index,
                width=i.width,
                height=i.height,
                detail=i.detail.value if i.detail else None,
                detail_applied=i.detail_applied.value,
                resized_width=i.resized_width,
                resized_height=i.resized_height,
                tokens=i.tokens,
            )
            for i in estimate.images
        ],
        video_tokens=estimate.video_tokens,
        videos=[_planned_video(v) for v in estimate.videos],
        max_completion_tokens=estimate.max_completion_tokens,
        cost=wire.CostRange(
            currency=estimate.prices.currency,
            prompt_only=money(estimate.cost_min),
            with_max_completion=money(estimate.cost_max),
        ),
    )
