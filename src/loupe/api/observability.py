"""Request ids, the access log and GET /metrics."""

from __future__ import annotations

import logging
import re
import secrets
import time

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from loupe.logs import request_fields, request_id
from loupe.service.metrics import Metrics

_log = logging.getLogger("loupe.access")
# A client may pass its own id (to correlate logs); anything else gets a fresh one.
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


class RequestContext:
    """Gives every request an id (`x-request-id` on every response) and logs one line per request.

    The line holds method, path, status and duration, and what the layers annotated (model, key
    id, error code): no query string, body, image or secret.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        offered = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        rid = offered if _CLIENT_ID.match(offered) else f"req_{secrets.token_hex(12)}"
        token = request_id.set(rid)
        fields: dict[str, object] = {}
        fields_token = request_fields.set(fields)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self._app(scope, receive, send_with_id)
        finally:
            _log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                    **fields,
                },
            )
            request_fields.reset(fields_token)
            request_id.reset(token)


def metrics_router(metrics: Metrics) -> APIRouter:
    api = APIRouter()

    @api.get("/metrics", include_in_schema=False)
    async def scrape() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return api
