"""Usage reports: charged requests, tokens and cost over a time range, optionally grouped.

Only charged rows count (status 200, and 499 for what was generated before the client left).
The range is half-open on the finish time, [start, end); days are UTC days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from loupe.billing.db import Database
from loupe.billing.money import NANOS_PER_UNIT, format_money, from_nanos
from loupe.billing.tables import ledger

GroupBy = str
"""`model`, `day`, `user`, or `metadata.KEY` (the value the requests' metadata gave KEY)."""

METADATA_GROUP = "metadata."


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """Sums over charged requests. `prompt_tokens` includes `image_tokens` and `video_tokens`."""

    requests: int = 0
    prompt_tokens: int = 0
    image_tokens: int = 0
    completion_tokens: int = 0
    cost: Decimal = Decimal(0)
    video_tokens: int = 0

    def as_dict(self) -> dict[str, int | str]:
        """JSON-ready: the cost as a decimal string ("0.000123")."""
        return {
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "image_tokens": self.image_tokens,
            "video_tokens": self.video_tokens,
            "completion_tokens": self.completion_tokens,
            "cost": format_money(int(self.cost.scaleb(9))),
        }


@dataclass(frozen=True, slots=True)
class UsageGroup:
    """One group's totals; `group` is a model id, an ISO date ("2026-01-31"), or a user or
    metadata value (None for requests that did not give one)."""

    group: str | None
    totals: UsageTotals


@dataclass(frozen=True, slots=True)
class UsageReport:
    totals: UsageTotals
    groups: tuple[UsageGroup, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "totals": self.totals.as_dict(),
            "groups": [{"group": g.group, **g.totals.as_dict()} for g in self.groups],
        }


def usage_report(
    db: Database,
    key_id: str | None,
    start: datetime,
    end: datetime,
    group_by: GroupBy | None = None,
) -> UsageReport:
    """Totals for one key (or all keys when None) between `start` and `end`, with groups."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("usage report bounds must be timezone-aware")
    where = [ledger.c.charged.is_(True), ledger.c.finished_at >= start, ledger.c.finished_at < end]
    if key_id is not None:
        where.append(ledger.c.key_id == key_id)
    sums = (
        sa.func.count().label("requests"),
        _sum(ledger.c.text_tokens + ledger.c.image_tokens + ledger.c.video_tokens).label("prompt_tokens"),
        _sum(ledger.c.image_tokens).label("image_tokens"),
        _sum(ledger.c.video_tokens).label("video_tokens"),
        _sum(ledger.c.completion_tokens).label("completion_tokens"),
        # Whole units and the rest apart: SQLite's sum() of BIGINTs fails past 2**63 - 1.
        _sum(ledger.c.cost // NANOS_PER_UNIT).label("cost_units"),
        _sum(ledger.c.cost % NANOS_PER_UNIT).label("cost_rest"),
    )
    with db.read() as conn:
        total_row = conn.execute(sa.select(*sums).where(*where)).one()
        groups: tuple[UsageGroup, ...] = ()
        if group_by is not None:
            column = _group_column(group_by)
            rows = conn.execute(
                sa.select(column.label("group"), *sums).where(*where).group_by(column).order_by(column)
            ).all()
            groups = tuple(UsageGroup(_group_name(r.group), _totals(r)) for r in rows)
    return UsageReport(_totals(total_row), groups)


def _group_column(group_by: GroupBy) -> sa.ColumnElement[Any]:
    """The ledger column (or metadata value) to group by; ValueError for anything else."""
    if group_by.startswith(METADATA_GROUP) and len(group_by) > len(METADATA_GROUP):
        value: sa.ColumnElement[Any] = ledger.c.request_metadata[group_by[len(METADATA_GROUP) :]].as_string()
        return value
    columns = {"model": ledger.c.model, "day": ledger.c.day, "user": ledger.c.user}
    if group_by not in columns:
        raise ValueError(f"cannot group usage by {group_by!r}")
    return columns[group_by]


def _sum(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    return sa.func.coalesce(sa.func.sum(column), 0)


def _totals(row: Any) -> UsageTotals:
    # PostgreSQL sums BIGINT into NUMERIC: int() brings every backend to plain integers.
    return UsageTotals(
        requests=int(row.requests),
        prompt_tokens=int(row.prompt_tokens),
        image_tokens=int(row.image_tokens),
        video_tokens=int(row.video_tokens),
        completion_tokens=int(row.completion_tokens),
        cost=from_nanos(int(row.cost_units) * NANOS_PER_UNIT + int(row.cost_rest)),
    )


def _group_name(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, date) else str(value)
