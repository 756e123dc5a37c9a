"""GET /v1/usage: the caller's own usage, grouped by model or day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from loupe.api.auth import caller_dependency
from loupe.api.openapi import errors
from loupe.billing import UsageReport
from loupe.api.state import AppState
from loupe.errors import InvalidApiKey, InvalidRequest
from loupe.service.accounts import Caller

# `metadata.KEY` groups by the value requests gave KEY in their `metadata`.
GroupBy = Annotated[str | None, Query(pattern=r"^(model|day|user|metadata\.[^\s]{1,64})$")]
# What `start` and `end` accept: ISO 8601 (a date is its midnight, naive times are UTC) or Unix seconds.
MOMENT = {
    "anyOf": [
        {"type": "string", "format": "date-time"},
        {"type": "string", "format": "date"},
        {"type": "number"},
        {"type": "null"},
    ]
}


def moment(description: str) -> Any:
    """A `start`/`end` query parameter, declared as what it accepts."""
    return Query(None, description=description, json_schema_extra=MOMENT)


def period(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """Default: the last 30 days up to now; naive times are UTC."""
    stop = _utc(end) if end else datetime.now(UTC)
    begin = _utc(start) if start else stop - timedelta(days=30)
    if begin >= stop:
        raise InvalidRequest("start must be before end", param="start")
    return begin, stop


def usage_object(report: UsageReport, start: datetime, end: datetime) -> dict[str, Any]:
    """The wire shape: totals at the top, one entry per group under `data`."""
    return {
        "object": "usage",
        "start": start.isoformat(),
        "end": end.isoformat(),
        **report.totals.as_dict(),
        "data": [{"group": g.group, **g.totals.as_dict()} for g in report.groups],
    }


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def router(state: AppState) -> APIRouter:
    api = APIRouter()
    caller_of = caller_dependency(state.accounts)

    @api.get("/usage", responses=errors(401), summary="Your key's usage: requests, tokens (image tokens apart) and cost")
    async def usage(
        start: datetime | None = moment("from (default: 30 days before `end`)"),
        end: datetime | None = moment("until (default: now)"),
        group_by: GroupBy = None,
        caller: Caller = Depends(caller_of),
    ) -> dict[str, Any]:
        if caller.key is None:
            raise InvalidApiKey("usage is reported per API key: send 'Authorization: Bearer <key>'")
        begin, stop = period(start, end)
        return usage_object(await state.accounts.usage(caller.key.id, begin, stop, group_by), begin, stop)

    return api
