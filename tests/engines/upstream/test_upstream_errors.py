"""Every upstream failure becomes a Loupe error, and no upstream text reaches the client."""

from __future__ import annotations

import aiohttp
import httpx
import pytest

from loupe import errors
from loupe.api.errors import status_of
from loupe.engines.upstream.errors import (
    RETRYABLE,
    UpstreamBadResponse,
    UpstreamTimeout,
    UpstreamUnavailable,
    error_for_status,
    error_for_transport,
    map_transport_errors,
)


def transport_errors() -> list[type[httpx.TransportError]]:
    found, pending = [], [httpx.TransportError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


@pytest.mark.parametrize("cls", transport_errors(), ids=lambda c: c.__name__)
def test_every_httpx_transport_error_is_mapped_to_a_retryable_error(cls: type[httpx.TransportError]) -> None:
    mapped = error_for_transport(cls("boom"))
    assert isinstance(mapped, RETRYABLE)
    assert "boom" not in mapped.message


def aiohttp_errors() -> list[type[aiohttp.ClientError]]:
    found, pending = [], [aiohttp.ClientError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(c for c in cls.__subclasses__() if c.__module__.startswith("aiohttp"))
    return found


@pytest.mark.parametrize("cls", aiohttp_errors(), ids=lambda c: c.__name__)
def test_every_aiohttp_error_is_mapped_to_a_retryable_error_raw_or_under_httpx(cls: type[aiohttp.ClientError]) -> None:
    failure = cls.__new__(cls)  # their constructors differ; the mapping reads the type alone
    wrapped = httpx.ConnectTimeout("coarse")  # what the transport makes of most of them
    wrapped.__cause__ = failure
    assert type(error_for_transport(failure)) is type(error_for_transport(wrapped))
    assert isinstance(error_for_transport(failure), RETRYABLE)


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        (aiohttp.ClientConnectorError, UpstreamUnavailable),
        (aiohttp.ConnectionTimeoutError, UpstreamUnavailable),
        (aiohttp.SocketTimeoutError, UpstreamTimeout),
        (aiohttp.ServerDisconnectedError, UpstreamBadResponse),
        (aiohttp.ClientPayloadError, UpstreamBadResponse),
        (aiohttp.ClientResponseError, UpstreamBadResponse),
    ],
)
def test_aiohttp_table_reads_the_cause_not_the_coarse_httpx_class(cls: type[aiohttp.ClientError], expected: type[errors.LoupeError]) -> None:
    wrapped = httpx.ConnectTimeout("coarse")
    wrapped.__cause__ = cls.__new__(cls)
    assert type(error_for_transport(wrapped)) is expected


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        (httpx.ConnectError, UpstreamUnavailable),
        (httpx.ConnectTimeout, UpstreamUnavailable),
        (httpx.PoolTimeout, UpstreamUnavailable),
        (httpx.ReadTimeout, UpstreamTimeout),
        (httpx.WriteTimeout, UpstreamTimeout),
        (httpx.ReadError, UpstreamBadResponse),
        (httpx.RemoteProtocolError, UpstreamBadResponse),
    ],
)
def test_transport_table(cls: type[httpx.TransportError], expected: type[errors.LoupeError]) -> None:
    assert type(error_for_transport(cls("x"))) is expected


def test_the_context_manager_translates_and_chains() -> None:
    with pytest.raises(UpstreamUnavailable) as caught, map_transport_errors():
        raise httpx.ConnectError("refused")
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


@pytest.mark.parametrize("status", [s for s in range(400, 600) if s not in (400, 413, 422)])
def test_every_error_status_maps_to_an_upstream_error(status: int) -> None:
    mapped = error_for_status(status, {"error": {"message": "internal detail /opt/secret"}})
    assert isinstance(mapped, RETRYABLE)
    assert "secret" not in mapped.message


@pytest.mark.parametrize("status", [400, 413, 422])
def test_client_fault_statuses_are_invalid_requests_without_upstream_text(status: int) -> None:
    body = {"error": {"message": "temperature must be < 2 (see /srv/vllm/x.py)", "param": "temperature"}}
    mapped = error_for_status(status, body)
    assert type(mapped) is errors.InvalidRequest
    assert mapped.param == "temperature"
    assert "srv" not in mapped.message


@pytest.mark.parametrize("param", ["<script>", "a" * 200, 7, None, "x y"])
def test_odd_params_are_dropped(param: object) -> None:
    mapped = error_for_status(400, {"error": {"param": param}})
    assert mapped.param is None


@pytest.mark.parametrize(("status", "expected"), [(429, UpstreamUnavailable), (503, UpstreamUnavailable), (504, UpstreamTimeout), (500, UpstreamBadResponse), (404, UpstreamBadResponse)])
def test_status_table(status: int, expected: type[errors.LoupeError]) -> None:
    assert type(error_for_status(status, None)) is expected


@pytest.mark.parametrize(
    ("cls", "status"), [(UpstreamBadResponse, 502), (UpstreamUnavailable, 503), (UpstreamTimeout, 504)]
)
def test_upstream_errors_map_to_gateway_statuses(cls: type[errors.LoupeError], status: int) -> None:
    assert status_of(cls("x"))[0] == status


def test_codes() -> None:
    assert (UpstreamBadResponse.code, UpstreamUnavailable.code, UpstreamTimeout.code) == (
        "UPSTREAM_ERROR",
        "SERVICE_NOT_AVAILABLE",
        "UPSTREAM_TIMEOUT",
    )


# vLLM's refusals as it words them (vllm/renderers/params.py, vllm/multimodal/processing/context.py).
VLLM_TOO_LONG = {
    "error": {
        "message": "This model's maximum context length is 4096 tokens. However, your prompt contains 5210 input "
        "tokens, which exceeds this limit even without any output tokens. (parameter=input_tokens, value=5210)",
        "type": "BadRequestError",
        "param": "input_tokens",
        "code": 400,
    }
}
VLLM_TOO_MANY_IMAGES = {
    "error": {
        "message": "At most 2 image(s) may be provided in one prompt. Set `--limit-mm-per-prompt` to increase this "
        "limit. (parameter=image)",
        "type": "BadRequestError",
        "param": "image",
        "code": 400,
    }
}
VLLM_TOO_LONG_WITH_IMAGES = {
    "error": {
        "message": "The decoder prompt (length 5444) is longer than the maximum model length of 4096. Make sure that "
        "`max_model_len` is no smaller than the number of text tokens plus multimodal tokens.",
        "type": "BadRequestError",
        "param": None,
        "code": 400,
    }
}
VLLM_UNTRUSTED_KWARGS = {"error": {"message": "Per-request mm_processor_kwargs are disabled", "param": "mm_processor_kwargs"}}


@pytest.mark.parametrize(
    ("body", "expected", "status"),
    [
        (VLLM_TOO_LONG, errors.ContextLengthExceeded, 400),
        (VLLM_TOO_LONG_WITH_IMAGES, errors.ContextLengthExceeded, 400),
        (VLLM_TOO_MANY_IMAGES, errors.TooManyImages, 400),
        (VLLM_UNTRUSTED_KWARGS, errors.EngineFailure, 500),
    ],
    ids=["context", "context-with-images", "images", "processor-kwargs"],
)
def test_vllm_refusals_become_loupes_codes(body: dict[str, object], expected: type[errors.LoupeError], status: int) -> None:
    mapped = error_for_status(400, body)
    assert type(mapped) is expected
    assert status_of(mapped)[0] == status
    assert not isinstance(mapped, RETRYABLE)  # the same request would fail on every replica
    assert "vllm" not in mapped.message.lower() and "4096" not in mapped.message
    assert mapped.param in (None, "messages")
