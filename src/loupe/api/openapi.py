"""The OpenAPI document: every status code and content type each route can answer.

Routes declare the errors that are theirs (`errors(401, 404)`); `install` adds what every
route can answer, and says 400 where FastAPI would say 422 (Loupe answers a request that does
not validate with a 400 in OpenAI's envelope, as OpenAI does).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from loupe.api.schemas import ErrorEnvelope

DESCRIPTIONS = {
    400: "The request is malformed or a field is invalid (`param` names it)",
    401: "No API key was sent, or it is unknown or revoked",
    403: "The key may not do this: the model, an admin endpoint, or not enough balance",
    404: "The model or resource does not exist",
    408: "The request's headers or body did not arrive in time",
    413: "The request body is larger than `max_request_bytes`",
    429: "Over the key's requests or tokens per minute (`Retry-After` says when to retry)",
    500: "A failure inside the server (details in its log, never in the response)",
    502: "An upstream replica failed",
    503: "Overloaded (the engine's queue or the connection cap is full) or the model is unavailable",
    504: "An upstream replica timed out",
}
_ENVELOPE = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
# FastAPI's own validation-error schemas, unused once 422 is gone.
_UNUSED = ("HTTPValidationError", "ValidationError")


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """A route's `responses=`: these statuses answer in OpenAI's error envelope."""
    return {code: {"model": ErrorEnvelope, "description": DESCRIPTIONS[code]} for code in codes}


def declare_server_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Add to each operation what any route can answer: 400 for invalid input (for 422), 408,
    413 for a body, 500 and 503."""
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            takes_input = responses.pop("422", None) is not None or "requestBody" in operation
            codes = [408, 500, 503, *([400] if takes_input else []), *([413] if "requestBody" in operation else [])]
            for code in codes:
                responses.setdefault(str(code), {"description": DESCRIPTIONS[code], "content": _ENVELOPE})
            operation["responses"] = dict(sorted(responses.items()))
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    if "ErrorEnvelope" not in components:  # no route declared an error of its own
        envelope = ErrorEnvelope.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(envelope.pop("$defs", {}))
        components["ErrorEnvelope"] = envelope
    for name in _UNUSED:
        components.pop(name, None)
    return schema


def install(app: FastAPI) -> None:
    """Serve `app`'s document with every answer declared (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            app.openapi_schema = declare_server_errors(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
