"""An OpenAI-compatible chat-completions client on httpx: one streamed request, parsed into chunks.

Requests always stream (`stream_options.include_usage`), whether or not Loupe's own client
streams: closing the chunk iterator closes the HTTP response, which is how an upstream learns
that nobody is listening any more, and one parser serves both cases.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, TypeGuard

import httpx
from pydantic_core import to_json

from loupe.domain import TokenLogprob, TopLogprob

from loupe.engines.upstream.errors import (
    UpstreamBadResponse,
    error_for_status,
    error_for_transport,
    map_transport_errors,
)
from loupe.engines.upstream.served import ServedReport, served_report
from loupe.engines.upstream.sse import EventTooLarge, sse_data, sse_lines

__all__ = ["CallPiece", "Chunk", "UpstreamClient", "UpstreamUsage", "parse_chunk"]

_log = logging.getLogger(__name__)

_ERROR_BODY_LIMIT = 64 * 1024
# A chunk is a few hundred bytes (a few kB with log probabilities): a stream that holds more than
# this unfinished is broken, and is not buffered further.
_EVENT_LIMIT = 4 * 1024 * 1024
_REFUSED_KEY = (
    "the upstream refused Loupe's credentials (HTTP %d): set the key it expects (vLLM's --api-key) as "
    "[models.upstream_options] api_key, or api_key_env naming the environment variable that holds it"
)
_LOGGED_BODY_CHARS = 200


@dataclass(frozen=True, slots=True)
class UpstreamUsage:
    """Usage as the upstream reported it; `image_tokens` only where it says: under
    `prompt_tokens_details.image_tokens` (Loupe) or `.multimodal_tokens.image` (vLLM, with
    `--enable-prompt-tokens-details`)."""

    prompt_tokens: int
    completion_tokens: int
    image_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class CallPiece:
    """Part of a streamed tool call: the call's `index`, and what this chunk adds to it."""

    index: int
    id: str = ""
    name: str = ""
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class Chunk:
    """One `chat.completion.chunk` of a single-choice stream, reduced to what Loupe uses."""

    text: str = ""
    finish_reason: str | None = None
    usage: UpstreamUsage | None = None
    logprobs: tuple[TokenLogprob, ...] = ()
    calls: tuple[CallPiece, ...] = ()


def parse_chunk(data: str) -> Chunk:
    """Parse one SSE payload; raises UpstreamBadResponse for anything but a well-formed chunk."""
    try:
        obj = json.loads(data)
    except ValueError:
        raise UpstreamBadResponse("the model server sent a malformed stream event") from None
    if not isinstance(obj, dict):
        raise UpstreamBadResponse("the model server sent a malformed stream event")
    if "error" in obj:
        # An error after the stream started: its text stays in the log (it may name upstream internals).
        _log.warning("upstream stream error: %.200s", json.dumps(obj["error"]))
        raise UpstreamBadResponse("the model server failed while generating")
    choices = obj.get("choices") or []
    if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
        raise UpstreamBadResponse("the model server sent a malformed stream event")
    if not choices:
        return Chunk(usage=_usage(obj.get("usage")))
    delta = choices[0].get("delta") or {}
    if not isinstance(delta, dict):
        raise UpstreamBadResponse("the model server sent a malformed stream event")
    content, reason = delta.get("content"), choices[0].get("finish_reason")
    return Chunk(
        text=_clean(content) if isinstance(content, str) else "",
        finish_reason=reason if isinstance(reason, str) else None,
        usage=_usage(obj.get("usage")),
        logprobs=_logprobs(choices[0].get("logprobs")),
        calls=tuple(_call_piece(c) for c in delta.get("tool_calls") or ()),
    )


def _logprobs(raw: Any) -> tuple[TokenLogprob, ...]:
    content = raw.get("content") if isinstance(raw, dict) else None
    if not content:
        return ()
    try:
        return tuple(
            TokenLogprob(_clean(e["token"]), float(e["logprob"]), tuple(e.get("bytes") or ()), tuple(
                TopLogprob(_clean(t["token"]), float(t["logprob"]), tuple(t.get("bytes") or ())) for t in e.get("top_logprobs") or ()
            ))
            for e in content
        )
    except (KeyError, TypeError, ValueError):
        raise UpstreamBadResponse("the model server sent malformed logprobs") from None


def _call_piece(raw: Any) -> CallPiece:
    function = raw.get("function") if isinstance(raw, dict) else None
    if not isinstance(function, dict) or not isinstance(raw.get("index", 0), int):
        raise UpstreamBadResponse("the model server sent a malformed tool call")
    return CallPiece(
        index=raw.get("index", 0),
        id=_clean(raw.get("id") or ""),
        name=_clean(function.get("name") or ""),
        arguments=_clean(function.get("arguments") or ""),
    )


def _clean(text: str) -> str:
    """The text with any lone surrogate (JSON may escape one; UTF-8 cannot carry it) as U+FFFD."""
    if not isinstance(text, str) or text.isascii():  # not a string: the caller's checks decide
        return text
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _usage(raw: Any) -> UpstreamUsage | None:
    if not isinstance(raw, dict):
        return None
    prompt, completion = raw.get("prompt_tokens"), raw.get("completion_tokens")
    if not (_is_count(prompt) and _is_count(completion)):
        raise UpstreamBadResponse("the model server reported a malformed usage")
    return UpstreamUsage(prompt, completion, _image_tokens(raw.get("prompt_tokens_details")))


def _image_tokens(details: Any) -> int | None:
    if not isinstance(details, dict):
        return None
    image = details.get("image_tokens")
    if _is_count(image):
        return image
    multimodal = details.get("multimodal_tokens")
    image = multimodal.get("image") if isinstance(multimodal, dict) else None
    return image if _is_count(image) else None


def _is_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class UpstreamClient:
    """Talks to replicas by base URL (`http://host:port/v1`); owns no replica state."""

    def __init__(self, http: httpx.AsyncClient, *, health_timeout_s: float = 2.0) -> None:
        self._http = http
        self._health_timeout = health_timeout_s
        self._failures: dict[str, str] = {}  # why each replica failing its health checks fails them

    async def stream_chat(self, base_url: str, body: dict[str, Any]) -> AsyncGenerator[Chunk, None]:
        """POST the body with `stream: true` and yield its chunks until `[DONE]` or the stream ends.

        Raises UpstreamUnavailable / UpstreamTimeout / UpstreamBadResponse for the replica's
        failures and InvalidRequest when the upstream refuses the request itself.
        """
        with map_transport_errors():
            # pydantic-core writes a body with images (base64 data URLs) five times faster than json.
            content, headers = to_json(body), {"content-type": "application/json"}
            url = f"{base_url}/chat/completions"
            async with self._http.stream("POST", url, content=content, headers=headers) as response:
                if response.status_code != 200:
                    raise await _status_error(base_url, response)
                done = False
                events = sse_data(sse_lines(response.aiter_bytes(), _EVENT_LIMIT), _EVENT_LIMIT)
                try:
                    async for data in events:
                        if done:  # anything after [DONE]: drop the connection rather than read on
                            return
                        if data.strip() == "[DONE]":
                            # Read on to the end of the body (it ends here): a response read whole
                            # leaves its connection in the pool, one closed early takes it along.
                            done = True
                            continue
                        yield parse_chunk(data)
                except EventTooLarge:
                    raise UpstreamBadResponse("the model server sent a stream event larger than Loupe takes") from None

    async def served(self, base_url: str, model: str) -> ServedReport | None:
        """What `GET {base_url}/models` says of `model`; None unless it answers 200 within the
        health timeout. Why a replica fails its checks is logged when it starts to, not at every check."""
        try:
            response = await self._http.get(f"{base_url}/models", timeout=self._health_timeout)
            if refused := _refused_key(response.status_code):
                self._failing(base_url, refused, error=True)
            if response.status_code != 200:
                return None
            body = response.json()
        except httpx.TransportError as exc:
            self._failing(base_url, error_for_transport(exc).message)
            return None
        except (httpx.HTTPError, ValueError):
            return None
        self._failures.pop(base_url, None)
        return served_report(body, model)

    def _failing(self, base_url: str, why: str, *, error: bool = False) -> None:
        if self._failures.get(base_url) != why:
            self._failures[base_url] = why
            level = logging.ERROR if error else logging.WARNING
            _log.log(level, "upstream health check failed: %s", why, extra={"upstream": base_url})

    async def aclose(self) -> None:
        await self._http.aclose()


def _refused_key(status: int) -> str | None:
    """What to tell the operator when a replica refuses Loupe's credentials; None for any other status."""
    return _REFUSED_KEY % status if status in (401, 403) else None


async def _status_error(base_url: str, response: httpx.Response) -> Exception:
    raw = bytearray()
    async for piece in response.aiter_bytes():
        raw.extend(piece[: _ERROR_BODY_LIMIT - len(raw)])
        if len(raw) >= _ERROR_BODY_LIMIT:
            break
    text = raw.decode("utf-8", errors="replace")
    if refused := _refused_key(response.status_code):
        _log.error(refused, extra={"upstream": base_url})
    _log.warning(
        "upstream refused a request",
        extra={"upstream": base_url, "status": response.status_code, "body": text[:_LOGGED_BODY_CHARS]},
    )
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    return error_for_status(response.status_code, body)
