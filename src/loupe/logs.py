"""Structured JSON logs: one object per line, with the request id of the request being served."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("loupe_request_id", default=None)
# What the layers learn about the request being served (model, key id, error code), for its access line.
request_fields: contextvars.ContextVar[dict[str, object] | None] = contextvars.ContextVar(
    "loupe_request_fields", default=None
)
# uvicorn passes a copy of its message with terminal colours; JSON lines carry the plain one.
_DROPPED = {"color_message"}


def annotate(**fields: object) -> None:
    """Add fields to the access line of the request being served (nothing outside a request).
    Never a secret or image data."""
    current = request_fields.get()
    if current is not None:
        current.update({name: value for name, value in fields.items() if value is not None})

# Attributes every LogRecord has; anything else was passed with `extra=` and is logged as a field.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"} | _DROPPED


def _fields(record: logging.LogRecord) -> dict[str, object]:
    entry: dict[str, object] = {}
    current = request_id.get()
    if current is not None:
        entry["request_id"] = current
    entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
    return entry


class JsonFormatter(logging.Formatter):
    """Log records as JSON. Callers pass fields with `extra=`; never image data or secrets."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """Log records as short lines for a person at a terminal: the same fields as `key=value`."""

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        if record.name == "loupe.access":  # "POST /v1/chat/completions 200 133.8ms model=m"
            method, path, status = (fields.pop(name, "") for name in ("method", "path", "status"))
            head = f"{method} {path} {status} {fields.pop('duration_ms', '')}ms"
        else:
            head = f"{record.levelname.lower()} {record.getMessage()}"
        fields.pop("request_id", None)
        line = " ".join([time.strftime("%H:%M:%S", time.localtime(record.created)), head,
                         *(f"{k}={v}" for k, v in fields.items())])
        return f"{line}\n{self.formatException(record.exc_info)}" if record.exc_info else line


def configure(level: str = "info", form: str = "auto") -> None:
    """Send Loupe's and uvicorn's logs to stderr: JSON lines, or text lines (`form` "text", or
    "auto" when stderr is a terminal)."""
    handler = logging.StreamHandler(sys.stderr)
    text = form == "text" or (form == "auto" and sys.stderr.isatty())
    handler.setFormatter(TextFormatter() if text else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    for noisy in ("transformers", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
