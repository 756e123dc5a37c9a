"""Refused request bodies name the part at fault and say why, whatever branch of a union failed."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from loupe.api.schemas import ChatCompletionRequest
from loupe.api.validation import validation_error
from loupe.errors import InvalidRequest


def refusal(content: Any) -> InvalidRequest:
    body = {"model": "m", "messages": [{"role": "user", "content": content}]}
    with pytest.raises(ValidationError) as caught:
        ChatCompletionRequest.model_validate(body)
    errors = [{**e, "loc": ("body", *e["loc"])} for e in caught.value.errors()]  # as FastAPI reports them
    return validation_error(errors)


@pytest.mark.parametrize(
    "part, kind",
    [
        ({"type": "input_video", "input_video": {"url": "https://example.com/v.mp4"}}, "input_video"),
        ({"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}, "input_audio"),
        ({"type": "file", "file": {"file_id": "f"}}, "file"),
    ],
)
def test_unsupported_part_types_are_named(part: dict[str, Any], kind: str) -> None:
    error = refusal([{"type": "text", "text": "What is this?"}, part])
    assert error.param == "messages[0].content[1].type"
    assert f"content part type {kind!r} is not supported" in error.message
    assert "valid string" not in error.message


def test_a_video_part_is_taken_and_its_fields_are_checked() -> None:
    part = {"type": "video_url", "video_url": {"url": "https://example.com/v.mp4", "fps": 1.5, "max_frames": 8}}
    body = {"model": "m", "messages": [{"role": "user", "content": [part]}]}
    parsed = ChatCompletionRequest.model_validate(body).messages[0].content
    assert isinstance(parsed, list) and parsed[0].video_url.fps == 1.5  # type: ignore[union-attr]
    error = refusal([{"type": "video_url", "video_url": {"url": "https://example.com/v.mp4", "frames": 8}}])
    assert error.param == "messages[0].content[0].video_url.frames"


def test_an_image_url_given_as_a_string_says_what_to_send() -> None:
    error = refusal([{"type": "image_url", "image_url": "https://example.com/cat.jpg"}])
    assert error.param == "messages[0].content[0].image_url"
    assert 'image_url must be an object such as {"url": ' in error.message


def test_a_part_without_a_type() -> None:
    error = refusal([{"text": "hi"}])
    assert error.param == "messages[0].content[0]" and "needs a 'type'" in error.message


def test_a_missing_field_inside_a_part() -> None:
    error = refusal([{"type": "text"}])
    assert error.param == "messages[0].content[0].text" and error.message.endswith("this field is required")


def test_content_of_the_wrong_kind() -> None:
    error = refusal(5)
    assert error.param == "messages[0].content"
    assert "content must be a string or a list of content parts" in error.message
