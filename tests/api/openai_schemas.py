"""JSON schemas of the response objects, written for these tests from OpenAI's published API document.

Source: github.com/openai/openai-openapi, `openapi.yaml`, components/schemas:
CreateChatCompletionResponse, CreateChatCompletionStreamResponse, ChatCompletionResponseMessage,
ChatCompletionStreamResponseDelta, ChatCompletionMessageToolCall, ChatCompletionMessageToolCallChunk,
ChatCompletionTokenLogprob, CompletionUsage, ServiceTier, Metadata, Error, ErrorResponse, Model,
ListModelsResponse. Required fields, types, enums and nullability follow that document; the
descriptions are left out, and extra properties are allowed as they are there (Loupe's models
carry their context size and prices, its usage its image tokens).
"""

from __future__ import annotations

from typing import Any

_NULL = {"type": "null"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, _NULL]}


_FINISH_REASON = {"type": "string", "enum": ["stop", "length", "tool_calls", "content_filter", "function_call"]}

_TOP_LOGPROB = {
    "type": "object",
    "required": ["token", "logprob", "bytes"],
    "properties": {
        "token": {"type": "string"},
        "logprob": {"type": "number"},
        "bytes": _nullable({"type": "array", "items": {"type": "integer"}}),
    },
}

_TOKEN_LOGPROB = {
    "type": "object",
    "required": ["token", "logprob", "bytes", "top_logprobs"],
    "properties": {**_TOP_LOGPROB["properties"], "top_logprobs": {"type": "array", "items": _TOP_LOGPROB}},
}

_LOGPROBS = _nullable(
    {
        "type": "object",
        "required": ["content", "refusal"],
        "properties": {
            "content": _nullable({"type": "array", "items": _TOKEN_LOGPROB}),
            "refusal": _nullable({"type": "array", "items": _TOKEN_LOGPROB}),
        },
    }
)

_TOOL_CALL = {
    "type": "object",
    "required": ["id", "type", "function"],
    "properties": {
        "id": {"type": "string"},
        "type": {"type": "string", "enum": ["function"]},
        "function": {
            "type": "object",
            "required": ["name", "arguments"],
            "properties": {"name": {"type": "string"}, "arguments": {"type": "string"}},
        },
    },
}

_TOOL_CALL_CHUNK = {
    "type": "object",
    "required": ["index"],
    "properties": {
        "index": {"type": "integer"},
        "id": {"type": "string"},
        "type": {"type": "string", "enum": ["function"]},
        "function": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "arguments": {"type": "string"}},
        },
    },
}

_USAGE = {
    "type": "object",
    "required": ["prompt_tokens", "completion_tokens", "total_tokens"],
    "properties": {
        "prompt_tokens": {"type": "integer"},
        "completion_tokens": {"type": "integer"},
        "total_tokens": {"type": "integer"},
        "completion_tokens_details": {
            "type": "object",
            "properties": {
                name: {"type": "integer"}
                for name in (
                    "accepted_prediction_tokens",
                    "audio_tokens",
                    "reasoning_tokens",
                    "text_tokens",
                    "rejected_prediction_tokens",
                )
            },
        },
        "prompt_tokens_details": {
            "type": "object",
            "properties": {
                name: {"type": "integer"}
                for name in ("audio_tokens", "cached_tokens", "text_tokens", "image_tokens", "cache_write_tokens")
            },
        },
    },
}

_SERVICE_TIER = _nullable({"type": "string", "enum": ["auto", "default", "flex", "scale", "priority", "fast"]})
_METADATA = _nullable({"type": "object", "additionalProperties": {"type": "string"}})

CREATE_CHAT_COMPLETION_RESPONSE: dict[str, Any] = {
    "type": "object",
    "required": ["choices", "created", "id", "model", "object"],
    "properties": {
        "id": {"type": "string"},
        "choices": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["finish_reason", "index", "message", "logprobs"],
                "properties": {
                    "finish_reason": _FINISH_REASON,
                    "index": {"type": "integer"},
                    "message": {
                        "type": "object",
                        "required": ["role", "content", "refusal"],
                        "properties": {
                            "content": _nullable({"type": "string"}),
                            "refusal": _nullable({"type": "string"}),
                            "tool_calls": {"type": "array", "items": _TOOL_CALL},
                            "role": {"type": "string", "enum": ["assistant"]},
                        },
                    },
                    "logprobs": _LOGPROBS,
                },
            },
        },
        "created": {"type": "integer"},
        "model": {"type": "string"},
        "metadata": _METADATA,
        "service_tier": _SERVICE_TIER,
        "system_fingerprint": {"type": "string"},
        "object": {"type": "string", "enum": ["chat.completion"]},
        "usage": _USAGE,
    },
}

CREATE_CHAT_COMPLETION_STREAM_RESPONSE: dict[str, Any] = {
    "type": "object",
    "required": ["choices", "created", "id", "model", "object"],
    "properties": {
        "id": {"type": "string"},
        "choices": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["delta", "finish_reason", "index"],
                "properties": {
                    "delta": {
                        "type": "object",
                        "properties": {
                            "content": _nullable({"type": "string"}),
                            "tool_calls": {"type": "array", "items": _TOOL_CALL_CHUNK},
                            "role": {"type": "string", "enum": ["developer", "system", "user", "assistant", "tool"]},
                            "refusal": _nullable({"type": "string"}),
                        },
                    },
                    "logprobs": _LOGPROBS,
                    "finish_reason": _nullable(_FINISH_REASON),
                    "index": {"type": "integer"},
                },
            },
        },
        "created": {"type": "integer"},
        "model": {"type": "string"},
        "obfuscation": {"type": "string"},
        "service_tier": _SERVICE_TIER,
        "system_fingerprint": {"type": "string"},
        "object": {"type": "string", "enum": ["chat.completion.chunk"]},
        "usage": _nullable(_USAGE),
    },
}

ERROR_RESPONSE: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message", "param", "code"],
            "properties": {
                "code": _nullable({"type": "string"}),
                "message": {"type": "string"},
                "param": _nullable({"type": "string"}),
                "type": {"type": "string"},
            },
        }
    },
}

MODEL: dict[str, Any] = {
    "type": "object",
    "required": ["id", "object", "created", "owned_by"],
    "properties": {
        "id": {"type": "string"},
        "created": {"type": "integer"},
        "object": {"type": "string", "enum": ["model"]},
        "owned_by": {"type": "string"},
        "shutdown_date": _nullable({"type": "string", "format": "date"}),
    },
}

LIST_MODELS_RESPONSE: dict[str, Any] = {
    "type": "object",
    "required": ["object", "data"],
    "properties": {"object": {"type": "string", "enum": ["list"]}, "data": {"type": "array", "items": MODEL}},
}
