"""JSON log lines: plain text only, with the fields the layers annotated on the request."""

from __future__ import annotations

import json
import logging

from loupe.logs import JsonFormatter, annotate, request_fields


def test_uvicorns_coloured_copy_is_dropped() -> None:
    record = logging.makeLogRecord(
        {"msg": "Started server process [%d]", "args": (7,), "color_message": "Started \x1b[36m%d\x1b[0m"}
    )
    line = JsonFormatter().format(record)
    assert "\x1b" not in line and "\\u001b" not in line
    assert json.loads(line)["message"] == "Started server process [7]"


def test_annotations_reach_only_the_current_request() -> None:
    annotate(model="outside")  # no request: nothing to annotate, and no error
    fields: dict[str, object] = {}
    token = request_fields.set(fields)
    try:
        annotate(model="tiny-qwen", key_id=None)
        annotate(error_code="MODEL_NOT_FOUND")
    finally:
        request_fields.reset(token)
    assert fields == {"model": "tiny-qwen", "error_code": "MODEL_NOT_FOUND"}


def test_text_lines_for_a_terminal_carry_the_same_fields() -> None:
    from loupe.logs import TextFormatter

    access = logging.makeLogRecord({
        "name": "loupe.access", "msg": "request", "method": "POST", "path": "/v1/chat/completions",
        "status": 404, "duration_ms": 3.2, "model": "gpt-4o", "error_code": "MODEL_NOT_FOUND",
    })
    line = TextFormatter().format(access)
    assert line.endswith("POST /v1/chat/completions 404 3.2ms model=gpt-4o error_code=MODEL_NOT_FOUND")
    other = logging.makeLogRecord({"name": "uvicorn.error", "msg": "Started", "levelname": "INFO", "color_message": "\x1b[1m"})
    assert TextFormatter().format(other).endswith("info Started")
