"""Balances and the ledger: reserve a request's maximum cost, settle it exactly once.

A reservation is a row (request id, key, amount, time) plus the same amount added to the key's
`reserved`; admission succeeds only if `balance - reserved` covers it, checked and applied in one
conditional UPDATE, so concurrent admissions never overdraw. Settling inserts the ledger row
first; the request id is its primary key, so a second settle of the same id inserts nothing and
changes nothing. The caller's transaction is committed (and durable) when `settle` returns.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import ReturningInsert

from loupe.billing.clock import Clock, utc_now
from loupe.billing.db import Database
from loupe.errors import DuplicateRequestId, FailedToAuth, NotEnoughBalance
from loupe.billing.money import format_money
from loupe.billing.tables import api_keys, ledger, reservations


@dataclass(frozen=True, slots=True)
class Reservation:
    """Money held for one admitted request until it is settled."""

    request_id: str
    key_id: str
    model: str
    amount_nanos: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a request ended, as the ledger records it. `charged` False means cost 0."""

    status: int
    charged: bool
    text_tokens: int
    image_tokens: int
    completion_tokens: int
    cost_nanos: int


@dataclass(frozen=True, slots=True)
class Tags:
    """What the client tagged a request with, kept on its ledger row: OpenAI's `user`,
    `safety_identifier` and `metadata` (at most 16 string pairs)."""

    user: str | None = None
    safety_identifier: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    request_id: str
    key_id: str
    model: str
    outcome: Outcome
    created_at: datetime
    finished_at: datetime
    tags: Tags = Tags()


class Ledger:
    """Reservations and settlements on one database."""

    def __init__(self, db: Database, clock: Clock = utc_now) -> None:
        self._db = db
        self._clock = clock

    def reserve(self, key_id: str, model: str, request_id: str, amount_nanos: int) -> Reservation:
        """Hold `amount_nanos` of the key's balance for `request_id`.

        Unlimited keys (balance NULL) always succeed. Raises NotEnoughBalance, FailedToAuth
        (key unknown or revoked) or DuplicateRequestId; nothing is held when it raises.
        """
        if amount_nanos < 0:
            raise ValueError("a reservation cannot be negative")
        held = Reservation(request_id, key_id, model, amount_nanos, self._clock())
        with self._db.write() as conn:
            if _exists(conn, ledger, ledger.c.request_id == request_id):
                raise DuplicateRequestId(f"request id {request_id!r} was already settled")
            taken = conn.execute(
                sa.update(api_keys)
                .where(
                    api_keys.c.id == key_id,
                    api_keys.c.revoked_at.is_(None),
                    sa.or_(
                        api_keys.c.balance.is_(None),
                        api_keys.c.balance - api_keys.c.reserved >= amount_nanos,
                    ),
                )
                .values(reserved=api_keys.c.reserved + amount_nanos)
            ).rowcount
            if taken != 1:
                raise _refusal(conn, key_id, amount_nanos)
            try:
                conn.execute(
                    sa.insert(reservations).values(
                        request_id=request_id,
                        key_id=key_id,
                        model=model,
                        amount=amount_nanos,
                        created_at=held.created_at,
                    )
                )
            except sa.exc.IntegrityError:
                raise DuplicateRequestId(f"request id {request_id!r} is already admitted") from None
        return held

    def settle(self, reservation: Reservation, outcome: Outcome, tags: Tags = Tags()) -> bool:
        """Record the request's outcome, charge its cost and release its reservation.

        Exactly once: returns True when this call recorded it, False when the request id was
        already in the ledger (then nothing changes). If the reservation was released as stale
        meanwhile, the cost is still charged. The charge may exceed the amount reserved; the
        balance then goes below zero rather than losing a charge.
        """
        finished = self._clock()
        row = {
            "request_id": reservation.request_id,
            "key_id": reservation.key_id,
            "model": reservation.model,
            "status": outcome.status,
            "charged": outcome.charged,
            "text_tokens": outcome.text_tokens,
            "image_tokens": outcome.image_tokens,
            "completion_tokens": outcome.completion_tokens,
            "cost": outcome.cost_nanos if outcome.charged else 0,
            "created_at": reservation.created_at,
            "finished_at": finished,
            "day": finished.astimezone(UTC).date(),
            "user": tags.user,
            "safety_identifier": tags.safety_identifier,
            "request_metadata": dict(tags.metadata) if tags.metadata else None,
        }
        with self._db.write() as conn:
            if conn.execute(_insert_ignoring_duplicates(conn, row)).first() is None:
                return False
            released = conn.execute(
                sa.delete(reservations)
                .where(reservations.c.request_id == reservation.request_id)
                .returning(reservations.c.amount)
            ).scalar_one_or_none()
            conn.execute(
                sa.update(api_keys)
                .where(api_keys.c.id == reservation.key_id)
                .values(
                    balance=api_keys.c.balance - row["cost"],
                    reserved=api_keys.c.reserved - (released or 0),
                )
            )
        return True

    def release_stale(self, older_than: timedelta) -> int:
        """Release reservations older than `older_than` (left by a crash); returns how many.

        Run at start-up with an age longer than any request can last: a reservation released
        while its request still runs only loses the overdraft guard, never a charge.
        """
        cutoff = self._clock() - older_than
        with self._db.write() as conn:
            rows = conn.execute(
                sa.delete(reservations)
                .where(reservations.c.created_at < cutoff)
                .returning(reservations.c.key_id, reservations.c.amount)
            ).all()
            per_key: Counter[str] = Counter()
            for key_id, amount in rows:
                per_key[key_id] += amount
            for key_id, amount in sorted(per_key.items()):  # one lock order across processes
                conn.execute(
                    sa.update(api_keys)
                    .where(api_keys.c.id == key_id)
                    .values(reserved=api_keys.c.reserved - amount)
                )
        return len(rows)

    def entry(self, request_id: str) -> LedgerEntry | None:
        with self._db.read() as conn:
            row = conn.execute(sa.select(ledger).where(ledger.c.request_id == request_id)).mappings().first()
        return None if row is None else _to_entry(row)

    def open_reservations(self, key_id: str | None = None) -> list[Reservation]:
        query = sa.select(reservations).order_by(reservations.c.created_at)
        if key_id is not None:
            query = query.where(reservations.c.key_id == key_id)
        with self._db.read() as conn:
            return [
                Reservation(r["request_id"], r["key_id"], r["model"], r["amount"], r["created_at"])
                for r in conn.execute(query).mappings()
            ]


def _exists(conn: Connection, table: sa.Table, condition: sa.ColumnElement[bool]) -> bool:
    return conn.execute(sa.select(sa.literal(1)).select_from(table).where(condition)).first() is not None


def _refusal(conn: Connection, key_id: str, amount_nanos: int) -> Exception:
    row = conn.execute(
        sa.select(api_keys.c.balance, api_keys.c.reserved, api_keys.c.revoked_at).where(
            api_keys.c.id == key_id
        )
    ).first()
    if row is None or row.revoked_at is not None:
        return FailedToAuth("the API key is unknown or revoked")
    available = max(row.balance - row.reserved, 0)
    return NotEnoughBalance(
        f"this request may cost up to {format_money(amount_nanos)}, and the key has "
        f"{format_money(available)} available; top up the key or lower max_tokens"
    )


def _insert_ignoring_duplicates(conn: Connection, row: dict[str, Any]) -> ReturningInsert[tuple[str]]:
    # RETURNING, not rowcount: SQLAlchemy does not promise a rowcount for INSERT (psycopg gives -1).
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    return (
        insert(ledger)
        .values(row)
        .on_conflict_do_nothing(index_elements=["request_id"])
        .returning(ledger.c.request_id)
    )


def _to_entry(row: Any) -> LedgerEntry:
    outcome = Outcome(
        status=row["status"],
        charged=bool(row["charged"]),
        text_tokens=row["text_tokens"],
        image_tokens=row["image_tokens"],
        completion_tokens=row["completion_tokens"],
        cost_nanos=row["cost"],
    )
    tags = Tags(row["user"], row["safety_identifier"], tuple(sorted((row["request_metadata"] or {}).items())))
    return LedgerEntry(
        row["request_id"], row["key_id"], row["model"], outcome, row["created_at"], row["finished_at"], tags
    )
