"""Upstream failures as Loupe errors: the one boundary where transport failures (httpx's, and
aiohttp's under its httpx transport) and upstream statuses come in.

Nothing of an upstream's body reaches a client: an upstream's own message may name its
internals (paths, hosts, stack traces), so the messages below are Loupe's, and the upstream's
status is kept only in the server log.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import httpx

from loupe.errors import (
    ContextLengthExceeded,
    EngineFailure,
    InvalidRequest,
    LoupeError,
    TooManyImages,
    UpstreamBadResponse,
    UpstreamTimeout,
    UpstreamUnavailable,
)

__all__ = [
    "RETRYABLE",
    "UpstreamBadResponse",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "error_for_status",
    "map_transport_errors",
]

_log = logging.getLogger(__name__)


RETRYABLE: tuple[type[LoupeError], ...] = (UpstreamBadResponse, UpstreamUnavailable, UpstreamTimeout)
"""Failures of the replica, not of the request: another replica may succeed."""

# Most specific first: httpx's timeouts are TransportErrors too.
_TRANSPORT: tuple[tuple[type[httpx.TransportError], type[LoupeError], str], ...] = (
    (httpx.ConnectTimeout, UpstreamUnavailable, "the model server did not accept a connection in time"),
    (httpx.PoolTimeout, UpstreamUnavailable, "too many requests are open to the model server"),
    (httpx.TimeoutException, UpstreamTimeout, "the model server did not answer in time"),
    (httpx.ConnectError, UpstreamUnavailable, "the model server cannot be reached"),
    (httpx.NetworkError, UpstreamBadResponse, "the connection to the model server broke"),
    (httpx.ProtocolError, UpstreamBadResponse, "the model server broke the HTTP protocol"),
    (httpx.ProxyError, UpstreamUnavailable, "the model server cannot be reached"),
    (httpx.UnsupportedProtocol, UpstreamUnavailable, "the model server's address is not http(s)"),
    (httpx.TransportError, UpstreamBadResponse, "the connection to the model server failed"),
)


# The httpx transport on aiohttp turns aiohttp's failures into httpx's coarsely (a refused
# connection reads as a connect timeout, a server gone mid-answer too): its cause says which.
_AIOHTTP: tuple[tuple[type[aiohttp.ClientError], type[LoupeError], str], ...] = (
    (aiohttp.ConnectionTimeoutError, UpstreamUnavailable, "the model server did not accept a connection in time"),
    (aiohttp.ClientSSLError, UpstreamUnavailable, "the model server's TLS certificate was not accepted"),
    (aiohttp.ServerTimeoutError, UpstreamTimeout, "the model server did not answer in time"),
    (aiohttp.ClientConnectorError, UpstreamUnavailable, "the model server cannot be reached"),
    (aiohttp.NonHttpUrlClientError, UpstreamUnavailable, "the model server's address is not http(s)"),
    (aiohttp.InvalidURL, UpstreamUnavailable, "the model server's address is not http(s)"),
    (aiohttp.ClientResponseError, UpstreamBadResponse, "the model server broke the HTTP protocol"),
    (aiohttp.ClientError, UpstreamBadResponse, "the connection to the model server broke"),
)


def error_for_transport(exc: httpx.TransportError | aiohttp.ClientError) -> LoupeError:
    cause = exc.__cause__ if isinstance(exc, httpx.TransportError) else exc
    failure, table = (cause, _AIOHTTP) if isinstance(cause, aiohttp.ClientError) else (exc, _TRANSPORT)
    for cls, loupe_cls, message in table:
        if isinstance(failure, cls):
            return loupe_cls(message)
    raise AssertionError("the tables end with their base classes")  # pragma: no cover


@contextmanager
def map_transport_errors() -> Iterator[None]:
    """Turn every transport failure raised inside into its Loupe error."""
    try:
        yield
    except (httpx.TransportError, aiohttp.ClientError) as exc:
        raise error_for_transport(exc) from exc


_PARAM = re.compile(r"[A-Za-z_][A-Za-z0-9_.\[\]]{0,63}")


def error_for_status(status: int, body: Any) -> LoupeError:
    """The Loupe error for an upstream's non-2xx answer; `body` is its parsed JSON, or None.

    A 400, 413 or 422 is the request's fault (see `refusal`). 401 and 403 refuse Loupe's key
    (`upstream_options.api_key`). 429 and 503 mean "busy": another replica may take it.
    """
    if status in (400, 413, 422):
        return refusal(_param_of(body), _message_of(body))
    if status in (401, 403):  # the operator's setting, not the client's request: logged where it arrives
        return UpstreamBadResponse("the model server refused this gateway's credentials")
    if status in (429, 503):
        return UpstreamUnavailable("the model server is busy; retry later")
    if status == 504:
        return UpstreamTimeout("the model server timed out")
    return UpstreamBadResponse(f"the model server answered with an error (HTTP {status})")


# vLLM names no `param` when a prompt with images is longer than its --max-model-len, only
# `input_tokens` / `input_text` for text alone; its messages say "maximum context length" or
# "maximum model length" (vllm/renderers/params.py, vllm/v1/engine/input_processor.py).
_CONTEXT_PARAMS = frozenset({"input_tokens", "input_text"})
_CONTEXT_WORDS = ("maximum context length", "maximum model length")


def refusal(param: str | None, message: str = "") -> LoupeError:
    """A refused request as Loupe's error with its stable code, chosen by the `param` the upstream
    names or, for a prompt too long, by the words of its message (which never reaches the
    client). Loupe checks context and image count against the replicas' stated limits first,
    so these come from limits it could not learn (vLLM's per-prompt image limit) or not yet.
    """
    if param in _CONTEXT_PARAMS or any(words in message.lower() for words in _CONTEXT_WORDS):
        return ContextLengthExceeded(
            "the prompt does not fit the model server's context; send fewer or smaller images, use detail "
            "'low', or shorten the conversation",
            param="messages",
        )
    if param == "image":  # vLLM: more images than its --limit-mm-per-prompt
        return TooManyImages("the model server takes fewer images in one request; send fewer images", param="messages")
    if param == "mm_processor_kwargs":
        _log.error(
            "the upstream refuses per-request processor settings, which this image detail needs: start vLLM with "
            "--trust-request-mm-kwargs"
        )
        return EngineFailure("the model server is not set up for this image detail; the server log says why")
    where = f" (parameter {param!r})" if param else ""
    return InvalidRequest(
        f"the model server refused this request{where}; check the sampling parameters and the prompt against "
        "what this model supports",
        param=param,
    )
def _message_of(body: Any) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return message if isinstance(message, str) else ""


def _param_of(body: Any) -> str | None:
    """The `param` of an OpenAI error envelope, if it is a plain field name."""
    error = body.get("error") if isinstance(body, dict) else None
    param = error.get("param") if isinstance(error, dict) else None
    if isinstance(param, str) and _PARAM.fullmatch(param):
        return param
    return None
