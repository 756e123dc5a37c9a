"""Frozen values every layer shares: chat requests, image references, sampling, usage and events.

No HTTP, no torch: the API converts wire schemas into these, the service passes them to the
engines, and the engines answer with the events (`events`). One module per concept; every name
is importable from `loupe.domain` itself.
"""

from __future__ import annotations

from loupe.domain.media import Detail, DEFAULT_DETAIL, ImageRef, PreparedImage, nested_overrides, PlannedImage, VideoRef, VideoFrames, PlannedVideo, PreparedVideo, SourceFile
from loupe.domain.chat import Role, TextPart, ContentPart, ToolCall, Message, PromptMessage, JsonOutput, ToolSpec, ToolCallOutput, Constraint, SamplingParams, ChatRequest
from loupe.domain.events import PromptStats, Usage, FinishReason, TopLogprob, TokenLogprob, TextDelta, ChoiceFinished, ToolCallDelta, GenerationEvent
from loupe.domain.catalogue import RateLimitInfo, Prices, DetailRule, Compute, ModelCard, Estimate

__all__ = [
    "ChatRequest",
    "ChoiceFinished",
    "Compute",
    "Constraint",
    "ContentPart",
    "DEFAULT_DETAIL",
    "Detail",
    "DetailRule",
    "Estimate",
    "FinishReason",
    "GenerationEvent",
    "ImageRef",
    "JsonOutput",
    "Message",
    "ModelCard",
    "PlannedImage",
    "PlannedVideo",
    "PreparedImage",
    "PreparedVideo",
    "Prices",
    "PromptMessage",
    "PromptStats",
    "RateLimitInfo",
    "Role",
    "SamplingParams",
    "SourceFile",
    "TextDelta",
    "TextPart",
    "TokenLogprob",
    "ToolCall",
    "ToolCallDelta",
    "ToolCallOutput",
    "ToolSpec",
    "TopLogprob",
    "Usage",
    "VideoFrames",
    "VideoRef",
    "nested_overrides",
]
