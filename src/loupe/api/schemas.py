"""OpenAI wire schemas: the request Loupe accepts and the objects it answers with.

Unknown fields are refused (`extra="forbid"`), and fields OpenAI defines that Loupe does not
implement are listed in `UNSUPPORTED_FIELDS` and refused by name unless they carry their no-op
value, so nothing a client sends is silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_STRICT = ConfigDict(extra="forbid")


class TextContent(BaseModel):
    model_config = _STRICT
    type: Literal["text"]
    text: str


class ImageUrl(BaseModel):
    model_config = _STRICT
    url: str = Field(min_length=1)
    detail: str | None = None


class ImageContent(BaseModel):
    model_config = _STRICT
    type: Literal["image_url"]
    image_url: ImageUrl


class VideoUrl(BaseModel):
    """Loupe's video part (the shape SiliconFlow and vLLM take): `fps` frames sampled per second
    of video, at most `max_frames`, each sized by `detail` as an image would be; absent values
    take the model's defaults (docs/vision-guide.md)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    url: str = Field(min_length=1)
    detail: str | None = None
    fps: float | None = None
    max_frames: int | None = None


class VideoContent(BaseModel):
    model_config = _STRICT
    type: Literal["video_url"]
    video_url: VideoUrl


ContentPart = Annotated[TextContent | ImageContent | VideoContent, Field(discriminator="type")]


class FunctionCall(BaseModel):
    model_config = _STRICT
    name: str
    arguments: str


class ToolCallObject(BaseModel):
    model_config = _STRICT
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(BaseModel):
    model_config = _STRICT
    role: str
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallObject] | None = None  # assistant turns
    tool_call_id: str | None = None  # tool turns
    refusal: str | None = None  # sent back as received; Loupe's models never refuse this way


class FunctionDefinition(BaseModel):
    model_config = _STRICT
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(BaseModel):
    model_config = _STRICT
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(BaseModel):
    model_config = _STRICT
    name: str


class NamedToolChoice(BaseModel):
    model_config = _STRICT
    type: Literal["function"]
    function: NamedFunction


class StreamOptions(BaseModel):
    model_config = _STRICT
    include_usage: bool = False
    include_obfuscation: bool | None = None  # accepted; Loupe adds no obfuscation padding


class JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = None
    json_schema: dict[str, Any] | bool | None = Field(None, alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    model_config = _STRICT
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


# OpenAI's published range for `seed` (a signed 64-bit integer).
SEED_MIN, SEED_MAX = -(2**63), 2**63 - 1


class ChatCompletionRequest(BaseModel):
    """POST /v1/chat/completions and POST /v1/estimate.

    Numbers are refused outside the ranges the engines handle: NaN and infinities (Python's JSON
    parser accepts them), seeds beyond 64 bits, and penalties so small that logits overflow.
    """

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=-1, le=2**31 - 1)
    min_p: float = Field(0.0, ge=0.0, le=1.0)
    repetition_penalty: float = Field(1.0, ge=0.01, le=10.0)
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=SEED_MIN, le=SEED_MAX)
    n: int = Field(1, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(None, max_length=256)
    # Fields that change nothing about the output: accepted, recorded where useful.
    metadata: dict[str, Annotated[str, Field(max_length=512)]] | None = Field(None, max_length=16)
    safety_identifier: str | None = Field(None, max_length=64)
    prompt_cache_key: str | None = None  # the prefix cache already keys by content
    prompt_cache_retention: Literal["in_memory", "24h"] | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority", "fast"] | None = None
    store: bool | None = None
    parallel_tool_calls: bool | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    logit_bias: dict[str, Annotated[float, Field(ge=-100, le=100)]] | None = None
    response_format: ResponseFormat | None = None
    tools: list[Tool] | None = Field(None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None

    @field_validator("metadata")
    @classmethod
    def _metadata_keys(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value and any(len(key) > 64 for key in value):
            raise ValueError("metadata keys are at most 64 characters")
        return value

    @field_validator("stop")
    @classmethod
    def _at_most_four(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences are allowed")
        return value


# Fields of OpenAI's chat API that Loupe does not implement, with the value that means "off".
_ABSENT = object()
UNSUPPORTED_FIELDS: dict[str, object] = {
    "functions": _ABSENT,
    "function_call": "none",
    "audio": _ABSENT,
    "modalities": ["text"],
    "prediction": _ABSENT,
    "web_search_options": _ABSENT,
    "reasoning_effort": _ABSENT,
    "verbosity": _ABSENT,
}


def unsupported_fields(extra: dict[str, Any]) -> list[str]:
    """Names of extra fields that are unsupported OpenAI features or unknown altogether."""
    refused = []
    for name, value in extra.items():
        off = UNSUPPORTED_FIELDS.get(name, _ABSENT)
        if value is None or (off is not _ABSENT and value == off):
            continue
        refused.append(name)
    return refused


# -- responses -----------------------------------------------------------------------------------


class PromptTokensDetails(BaseModel):
    image_tokens: int
    text_tokens: int
    cached_tokens: int = 0
    video_tokens: int = 0


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails


def _absent(value: object) -> bool:
    return value is None


class FunctionCallChunk(BaseModel):
    name: str | None = Field(None, exclude_if=_absent)  # in a call's first chunk only
    arguments: str


class ToolCallChunk(BaseModel):
    """A piece of a streamed call: the first has its id, type and name, every one arguments text."""

    index: int
    id: str | None = Field(None, exclude_if=_absent)
    type: Literal["function"] | None = Field(None, exclude_if=_absent)
    function: FunctionCallChunk


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    refusal: None = None  # OpenAI requires the key; Loupe's models never refuse by a separate channel
    tool_calls: list[ToolCallObject] | None = Field(None, exclude_if=_absent)  # absent, never null


class TopLogprobObject(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprobObject(TopLogprobObject):
    top_logprobs: list[TopLogprobObject]


class ChoiceLogprobs(BaseModel):
    content: list[TokenLogprobObject] | None
    refusal: list[TokenLogprobObject] | None = None


class Choice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: Literal["stop", "length", "tool_calls"]
    logprobs: ChoiceLogprobs | None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage
    system_fingerprint: str
    service_tier: Literal["default"] = "default"


class Delta(BaseModel):
    """OpenAI leaves out `role` after the first chunk (null is not allowed there)."""

    role: Literal["assistant"] | None = Field(None, exclude_if=_absent)
    content: str | None = None
    tool_calls: list[ToolCallChunk] | None = Field(None, exclude_if=_absent)


class ChunkChoice(BaseModel):
    index: int
    delta: Delta
    finish_reason: Literal["stop", "length", "tool_calls"] | None = None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: CompletionUsage | None = None
    system_fingerprint: str
    service_tier: Literal["default"] = "default"


class DetailRuleObject(BaseModel):
    detail: str
    rule: str
    tokens: int | None


class ModelObject(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    type: str
    sub_type: str
    family: str
    context_size: int
    max_images: int
    max_videos: int
    currency: str
    input_token_price_per_m: str
    output_token_price_per_m: str
    detail_rules: list[DetailRuleObject]
    capabilities: dict[str, bool]


class PlannedImageObject(BaseModel):
    index: int
    width: int
    height: int
    detail: str | None
    detail_applied: str
    resized_width: int
    resized_height: int
    tokens: int


class PlannedVideoObject(BaseModel):
    index: int
    width: int
    height: int
    duration_s: float
    fps: float
    frames: int  # sampled
    detail: str | None
    detail_applied: str
    resized_width: int
    resized_height: int
    tokens: int  # the frames' placeholders; the prompt's video_tokens add the text between frames


class CostRange(BaseModel):
    currency: str
    prompt_only: str
    with_max_completion: str


class EstimateObject(BaseModel):
    object: Literal["chat.completion.estimate"] = "chat.completion.estimate"
    model: str
    prompt_tokens: int
    text_tokens: int
    image_tokens: int
    images: list[PlannedImageObject]
    video_tokens: int
    videos: list[PlannedVideoObject]
    max_completion_tokens: int
    cost: CostRange


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelObject]


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None
    code: str


class ErrorEnvelope(BaseModel):
    error: ErrorBody
