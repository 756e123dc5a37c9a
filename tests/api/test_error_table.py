"""Every error class maps to an HTTP status, and the envelope is OpenAI's."""

from __future__ import annotations

import pytest

from loupe import errors
from loupe.api.errors import envelope, status_of


@pytest.mark.parametrize("cls", errors.error_classes(), ids=lambda c: c.__name__)
def test_every_error_class_has_a_status(cls: type[errors.LoupeError]) -> None:
    status, kind = status_of(cls("x"))
    assert 400 <= status < 600
    assert kind in {"invalid_request_error", "server_error", "authentication_error", "permission_error", "rate_limit_error"}


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (errors.InvalidRequest("x"), 400),
        (errors.ModelNotFound("x"), 404),
        (errors.ServiceUnavailable("x"), 503),
        (errors.RequestTooLarge("x"), 413),
        (errors.ContextLengthExceeded("x"), 400),
        (errors.ImageUrlForbidden("x"), 400),
        (errors.TooManyImages("x"), 400),
        (errors.InvalidApiKey("x"), 401),
        (errors.FailedToAuth("x"), 401),
        (errors.AccessDenied("x"), 403),
        (errors.NotEnoughBalance("x"), 403),
        (errors.RateLimitExceeded("x"), 429),
        (errors.TokenLimitExceeded("x"), 429),
    ],
)
def test_statuses(error: errors.LoupeError, status: int) -> None:
    assert status_of(error)[0] == status


def test_envelope_has_the_four_openai_fields() -> None:
    body = envelope(errors.InvalidImageFormat("not an image", param="messages[0].content[1].image_url"))
    assert body == {
        "error": {
            "message": "not an image",
            "type": "invalid_request_error",
            "param": "messages[0].content[1].image_url",
            "code": "INVALID_IMAGE_FORMAT",
        }
    }
