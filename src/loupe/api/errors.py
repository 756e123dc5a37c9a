"""Loupe errors to HTTP: one table, and the handlers that answer in OpenAI's error envelope."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from loupe import errors
from loupe.api.auth import rate_limit_headers
from loupe.api.schemas import ErrorBody, ErrorEnvelope
from loupe.api.validation import validation_error
from loupe.logs import annotate

_log = logging.getLogger(__name__)

# class -> (HTTP status, OpenAI error type). Subclasses not listed inherit their base's entry.
HTTP_TABLE: dict[type[errors.LoupeError], tuple[int, str]] = {
    errors.LoupeError: (500, "server_error"),
    errors.InvalidRequest: (400, "invalid_request_error"),
    errors.RequestTooLarge: (413, "invalid_request_error"),
    errors.RequestTimeout: (408, "invalid_request_error"),
    errors.ContextLengthExceeded: (400, "invalid_request_error"),
    errors.ModelNotFound: (404, "invalid_request_error"),
    errors.NotFound: (404, "invalid_request_error"),
    errors.MethodNotAllowed: (405, "invalid_request_error"),
    errors.ImageError: (400, "invalid_request_error"),
    errors.TooManyImages: (400, "invalid_request_error"),
    errors.VideoError: (400, "invalid_request_error"),
    errors.VideoNotSupported: (400, "invalid_request_error"),
    errors.TooManyVideos: (400, "invalid_request_error"),
    errors.VideoTokensExceeded: (400, "invalid_request_error"),
    errors.VideoCombinationNotSupported: (400, "invalid_request_error"),
    errors.InvalidApiKey: (401, "authentication_error"),
    errors.FailedToAuth: (401, "authentication_error"),
    errors.AccessDenied: (403, "permission_error"),
    errors.NotEnoughBalance: (403, "permission_error"),
    errors.RateLimited: (429, "rate_limit_error"),
    errors.DuplicateRequestId: (409, "invalid_request_error"),
    errors.ServiceUnavailable: (503, "server_error"),
    errors.StreamStalled: (408, "invalid_request_error"),
    errors.UpstreamBadResponse: (502, "server_error"),
    errors.UpstreamUnavailable: (503, "server_error"),
    errors.UpstreamTimeout: (504, "server_error"),
    errors.ConfigError: (500, "server_error"),
    errors.ModelLoadError: (503, "server_error"),
    errors.EngineFailure: (500, "server_error"),
}


def status_of(error: errors.LoupeError) -> tuple[int, str]:
    for cls in type(error).__mro__:
        if cls in HTTP_TABLE:
            return HTTP_TABLE[cls]
    raise LookupError(f"no HTTP mapping for {type(error).__name__}")


def envelope(error: errors.LoupeError) -> dict[str, Any]:
    _, kind = status_of(error)
    body = ErrorBody(message=error.message, type=kind, param=error.param, code=error.code)
    return ErrorEnvelope(error=body).model_dump()


def error_response(error: errors.LoupeError, headers: dict[str, str] | None = None) -> JSONResponse:
    status, _ = status_of(error)
    annotate(error_code=error.code)
    return JSONResponse(envelope(error), status_code=status, headers=headers)


def _headers_of(error: errors.LoupeError) -> dict[str, str] | None:
    """429s tell the client when to retry, as OpenAI's do."""
    if not isinstance(error, errors.RateLimited):
        return None
    headers = rate_limit_headers(error.info)
    wait = error.retry_after_s
    if wait is not None:  # the same whole seconds as the message; the openai client reads the ms
        headers["retry-after"] = str(errors.whole_seconds(wait))
        headers["retry-after-ms"] = str(math.ceil(wait * 1000))
    return headers


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (HTTP requires them in a 405's `Allow`;
    Starlette names only those of the first route that matched the path)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if route.matches(request.scope)[0] is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


def install_handlers(app: FastAPI) -> None:
    """Every error a client can see goes through these; no traceback leaves the server."""

    @app.exception_handler(errors.LoupeError)
    async def _loupe(request: Request, exc: errors.LoupeError) -> JSONResponse:
        return error_response(exc, _headers_of(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(validation_error(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error_response(errors.NotFound(f"no route {request.method} {request.url.path}"))
        if exc.status_code == 405:
            refused = errors.MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}")
            return error_response(refused, headers={"allow": _allowed_methods(request)})
        error = errors.InvalidRequest(str(exc.detail))
        annotate(error_code=error.code)
        return JSONResponse(envelope(error), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        _log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(errors.EngineFailure("internal error; the server log has details"))
