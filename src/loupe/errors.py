"""The one exception hierarchy of Loupe: a stable code, a message a person can act on, and a param.

Nothing here knows HTTP. The API layer maps each class to a status in one table
(`loupe.api.errors`), and a test checks that every concrete class below has a mapping.
"""

from __future__ import annotations

import math

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from loupe.domain import RateLimitInfo


class LoupeError(Exception):
    """Base of every error Loupe reports to a caller.

    `code` is stable and documented; `message` says what happened and what to do;
    `param` names the offending request field (`messages[0].content[1].image_url`).
    """

    code: ClassVar[str] = "INTERNAL_ERROR"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    def with_param(self, param: str) -> LoupeError:
        """Return the same error located at `param`, unless it already names one."""
        if self.param is None:
            self.param = param
        return self


# -- the request itself --------------------------------------------------------------------------


class InvalidRequest(LoupeError):
    """The body is malformed, a field has the wrong type or value, or a field is unsupported."""

    code = "INVALID_REQUEST_BODY"


class RequestTooLarge(LoupeError):
    """The request body is larger than the configured limit."""

    code = "REQUEST_TOO_LARGE"


class ContextLengthExceeded(LoupeError):
    """The prompt alone does not fit the model's context window."""

    code = "context_length_exceeded"


class RequestTimeout(LoupeError):
    """The request's headers or body did not arrive within the server's deadline."""

    code = "REQUEST_TIMEOUT"


class ModelNotFound(LoupeError):
    """The requested model is not served here."""

    code = "MODEL_NOT_FOUND"


class NotFound(LoupeError):
    """A route or resource that does not exist."""

    code = "NOT_FOUND"


class MethodNotAllowed(LoupeError):
    """The route exists but not for this HTTP method."""

    code = "METHOD_NOT_ALLOWED"


# -- images --------------------------------------------------------------------------------------


class ImageError(LoupeError):
    """Base of the errors about one image part."""

    code = "INVALID_IMAGE"


class InvalidImageFormat(ImageError):
    """Not an image, a format Loupe does not accept, or truncated/corrupt data."""

    code = "INVALID_IMAGE_FORMAT"


class InvalidImageSize(ImageError):
    """Smaller than the model accepts."""

    code = "INVALID_IMAGE_SIZE"


class ImageExceedsMaxResolution(ImageError):
    """More pixels (or a longer side) than allowed: refused before decoding."""

    code = "IMAGE_EXCEEDS_MAX_RESOLUTION"


class ImageFileExceedsMaxSize(ImageError):
    """More bytes than allowed for one image."""

    code = "IMAGE_FILE_EXCEEDS_MAX_SIZE"


class ImageFetchFailed(ImageError):
    """An image URL could not be fetched: unreachable, timed out, or answered with an error."""

    code = "IMAGE_FETCH_FAILED"


class ImageUrlForbidden(ImageError):
    """An image URL Loupe refuses to fetch: scheme, address or host not allowed."""

    code = "IMAGE_URL_FORBIDDEN"


class TooManyImages(LoupeError):
    """More images in one request than the model allows."""

    code = "TOO_MANY_IMAGES"


# -- videos --------------------------------------------------------------------------------------


class VideoError(LoupeError):
    """Base of the errors about one video part."""

    code = "INVALID_VIDEO"


class InvalidVideoFormat(VideoError):
    """Not a video, a container or codec Loupe does not accept, or a truncated/corrupt file."""

    code = "INVALID_VIDEO_FORMAT"


class VideoFileExceedsMaxSize(VideoError):
    """More bytes than allowed for one video."""

    code = "VIDEO_FILE_EXCEEDS_MAX_SIZE"


class VideoExceedsMaxDuration(VideoError):
    """Longer than allowed: refused from the container's metadata, before decoding."""

    code = "VIDEO_EXCEEDS_MAX_DURATION"


class VideoExceedsMaxResolution(VideoError):
    """Frames with more pixels (or a longer side) than allowed: refused before decoding."""

    code = "VIDEO_EXCEEDS_MAX_RESOLUTION"


class TooManyVideoFrames(VideoError):
    """More frames to sample (or declared) than allowed."""

    code = "TOO_MANY_VIDEO_FRAMES"


class VideoFetchFailed(VideoError):
    """A video URL could not be fetched: unreachable, timed out, or answered with an error."""

    code = "VIDEO_FETCH_FAILED"


class VideoUrlForbidden(VideoError):
    """A video URL Loupe refuses to fetch: scheme, address or host not allowed."""

    code = "VIDEO_URL_FORBIDDEN"


class VideoNotSupported(LoupeError):
    """The model does not take video input."""

    code = "VIDEO_NOT_SUPPORTED"


class TooManyVideos(LoupeError):
    """More videos in one request than the model allows."""

    code = "TOO_MANY_VIDEOS"


class VideoTokensExceeded(LoupeError):
    """The request's videos would become more tokens than the model allows per request."""

    code = "VIDEO_TOKENS_EXCEED_LIMIT"


class VideoCombinationNotSupported(LoupeError):
    """The model takes these videos only in separate requests: beside images (families whose
    processor or model reads images and video frames alike), or several sampled differently
    (where one setting covers a request's videos)."""

    code = "VIDEO_COMBINATION_NOT_SUPPORTED"


# -- keys, balances and rate limits ---------------------------------------------------------------


class InvalidApiKey(LoupeError):
    """No API key was sent (or it is not shaped like one)."""

    code = "INVALID_API_KEY"


class FailedToAuth(LoupeError):
    """The API key is unknown or revoked."""

    code = "FAILED_TO_AUTH"


class AccessDenied(LoupeError):
    """The key may not use the requested model."""

    code = "ACCESS_DENY"


class NotEnoughBalance(LoupeError):
    """The key's available balance does not cover the request's maximum cost."""

    code = "NOT_ENOUGH_BALANCE"


class DuplicateRequestId(LoupeError):
    """A request id was admitted twice; request ids must be unique."""

    code = "DUPLICATE_REQUEST_ID"


class RateLimited(LoupeError):
    """Base of the 429s. `info` carries the numbers for OpenAI's x-ratelimit-* headers.

    `retry_after_s` is None when waiting cannot help (one request needs more tokens than the
    per-minute limit allows).
    """

    code = "RATE_LIMIT_EXCEEDED"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        info: RateLimitInfo | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, param=param)
        self.info = info
        self.retry_after_s = retry_after_s


def whole_seconds(seconds: float) -> int:
    """A wait in whole seconds, rounded up so that retrying then succeeds; at least 1. The 429's
    message and its `retry-after` header both say this number."""
    return max(1, math.ceil(seconds - 1e-6))


class RateLimitExceeded(RateLimited):
    """Too many requests per minute for the key (or the key on this model)."""

    code = "RATE_LIMIT_EXCEEDED"


class TokenLimitExceeded(RateLimited):
    """Too many tokens per minute for the key (or the key on this model)."""

    code = "TOKEN_LIMIT_EXCEEDED"


# -- serving -------------------------------------------------------------------------------------


class ServiceUnavailable(LoupeError):
    """The server cannot take the request now (overloaded, shutting down, model not loaded)."""

    code = "SERVICE_NOT_AVAILABLE"


class StreamStalled(LoupeError):
    """A streamed response's client stopped reading for longer than the stall timeout."""

    code = "STREAM_STALLED"


class ConfigError(LoupeError):
    """The configuration file or command-line options are invalid; raised before the server listens."""

    code = "INVALID_CONFIG"


class ModelLoadError(LoupeError):
    """A model could not be loaded at start-up; raised before the server listens."""

    code = "MODEL_LOAD_FAILED"


class EngineFailure(LoupeError):
    """The engine failed while running a request that was valid."""

    code = "INTERNAL_ERROR"


# -- upstream engines -----------------------------------------------------------------------------


class UpstreamBadResponse(EngineFailure):
    """The upstream answered with a server error or with something that is not a valid response (502)."""

    code = "UPSTREAM_ERROR"



class UpstreamUnavailable(ServiceUnavailable):
    """No upstream replica could be reached, or the one tried is overloaded (503)."""

    code = "SERVICE_NOT_AVAILABLE"



class UpstreamTimeout(EngineFailure):
    """The upstream did not answer within the configured timeouts (504)."""

    code = "UPSTREAM_TIMEOUT"



def error_classes() -> list[type[LoupeError]]:
    """Every class of the hierarchy, for the test that checks each has an HTTP mapping."""
    found: list[type[LoupeError]] = []
    pending: list[type[LoupeError]] = [LoupeError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found
