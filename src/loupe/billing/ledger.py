"""Balances and the ledger: reserve a request's maximum cost, settle it exactly once.

A reservation is a row (request id, key, amount, time, the process holding it) plus the same
amount added to the key's `reserved`; admission succeeds only if `balance - reserved` covers it,
checked and applied in one conditional UPDATE, so concurrent admissions never overdraw. Settling
inserts the ledger row first; the request id is its primary key, so a second settle of the same
id inserts nothing and changes nothing. The caller's transaction is committed (and durable) when
`settle` returns. Every sum is checked inside its UPDATE so that none leaves BIGINT's range.
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
from loupe.errors import DuplicateRequestId, FailedToAuth, InvalidRequest, NotEnoughBalance
from loupe.billing.money import MAX_NANOS, MIN_NANOS, format_money
from loupe.billing.tables import api_keys, ledger, processes, reservations


@dataclass(frozen=True, slots=True)
class Reservation:
    """Money held for one admitted request until it is settled."""

    request_id: str
    key_id: str
    model: str
    amount_nanos: int
    created_at: datetime
    owner: str | None = None  # the serving process holding it (see `processes`)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a request ended, as the ledger records it. `charged` False means cost 0."""

    status: int
    charged: bool
    text_tokens: int
    image_tokens: int
    completion_tokens: int
    cost_nanos: int
    video_tokens: int = 0


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

    def __init__(self, db: Database, clock: Clock = utc_now, owner: str | None = None) -> None:
        """`owner`: the registered process whose reservations these are (None: not recorded)."""
        self._db = db
        self._clock = clock
        self._owner = owner

    def reserve(self, key_id: str, model: str, request_id: str, amount_nanos: int) -> Reservation:
        """Hold `amount_nanos` of the key's balance for `request_id`.

        Unlimited keys (balance NULL) succeed while the key's holds stay within `MAX_NANOS`.
        Raises NotEnoughBalance, InvalidRequest (the key's holds would pass `MAX_NANOS`),
        FailedToAuth (key unknown or revoked) or DuplicateRequestId; nothing is held when it raises.
        """
        if not 0 <= amount_nanos <= MAX_NANOS:
            raise ValueError(f"a reservation must be 0 to {MAX_NANOS} nano-units, not {amount_nanos}")
        held = Reservation(request_id, key_id, model, amount_nanos, self._clock(), self._owner)
        with self._db.write() as conn:
            if _exists(conn, ledger, ledger.c.request_id == request_id):
                raise DuplicateRequestId(f"request id {request_id!r} was already settled")
            taken = conn.execute(
                sa.update(api_keys)
                .where(
                    api_keys.c.id == key_id,
                    api_keys.c.revoked_at.is_(None),
                    api_keys.c.reserved <= MAX_NANOS - amount_nanos,
                    sa.or_(api_keys.c.balance.is_(None), _covers(amount_nanos)),
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
                        owner=self._owner,
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
        balance then goes below zero rather than losing a charge (down to `MIN_NANOS` at most).
        """
        if not 0 <= outcome.cost_nanos <= MAX_NANOS:
            raise ValueError(f"a cost must be 0 to {MAX_NANOS} nano-units, not {outcome.cost_nanos}")
        finished = self._clock()
        cost = outcome.cost_nanos if outcome.charged else 0
        row = {
            "request_id": reservation.request_id,
            "key_id": reservation.key_id,
            "model": reservation.model,
            "status": outcome.status,
            "charged": outcome.charged,
            "text_tokens": outcome.text_tokens,
            "image_tokens": outcome.image_tokens,
            "video_tokens": outcome.video_tokens,
            "completion_tokens": outcome.completion_tokens,
            "cost": cost,
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
                .values(balance=_charged(cost), reserved=api_keys.c.reserved - (released or 0))
            )
        return True

    def release_abandoned(self, older_than: timedelta) -> list[Reservation]:
        """Release the reservations no live process holds, and return them.

        Those are the ones whose owner has no `processes` row (it was found dead, or retired), and
        any older than `older_than`: a backstop, and the only rule for rows made before owners
        were recorded. A reservation released while its request still runs only loses the
        overdraft guard, never a charge: `settle` charges without it.
        """
        owner_alive = sa.exists(sa.select(processes.c.id).where(processes.c.id == reservations.c.owner))
        abandoned = sa.or_(
            reservations.c.created_at < self._clock() - older_than,
            sa.and_(reservations.c.owner.is_not(None), ~owner_alive),
        )
        with self._db.read() as conn:  # most sweeps find nothing: no write lock for them
            if not _exists(conn, reservations, abandoned):
                return []
        with self._db.write() as conn:
            rows = conn.execute(sa.delete(reservations).where(abandoned).returning(*reservations.c)).mappings().all()
            per_key: Counter[str] = Counter()
            for row in rows:
                per_key[row["key_id"]] += row["amount"]
            for key_id, amount in sorted(per_key.items()):  # one lock order across processes
                conn.execute(
                    sa.update(api_keys)
                    .where(api_keys.c.id == key_id)
                    .values(reserved=api_keys.c.reserved - amount)
                )
        return [_to_reservation(row) for row in rows]

    def entry(self, request_id: str) -> LedgerEntry | None:
        with self._db.read() as conn:
            row = conn.execute(sa.select(ledger).where(ledger.c.request_id == request_id)).mappings().first()
        return None if row is None else _to_entry(row)

    def open_reservations(self, key_id: str | None = None) -> list[Reservation]:
        query = sa.select(reservations).order_by(reservations.c.created_at)
        if key_id is not None:
            query = query.where(reservations.c.key_id == key_id)
        with self._db.read() as conn:
            return [_to_reservation(row) for row in conn.execute(query).mappings()]


def _exists(conn: Connection, table: sa.Table, condition: sa.ColumnElement[bool]) -> bool:
    return conn.execute(sa.select(sa.literal(1)).select_from(table).where(condition)).first() is not None


def _covers(amount_nanos: int) -> sa.ColumnElement[bool]:
    """balance - reserved >= amount, written so that no step leaves BIGINT's range (CASE keeps
    the order on PostgreSQL; a negative balance minus a large amount would overflow)."""
    balance, reserved = api_keys.c.balance, api_keys.c.reserved
    return sa.case((balance >= amount_nanos, balance - amount_nanos >= reserved), else_=sa.false())


def _charged(cost_nanos: int) -> sa.ColumnElement[int]:
    """The balance less a charge, held at MIN_NANOS rather than leaving the column's range."""
    balance = api_keys.c.balance
    return sa.case((balance < MIN_NANOS + cost_nanos, MIN_NANOS), else_=balance - cost_nanos)


def _refusal(conn: Connection, key_id: str, amount_nanos: int) -> Exception:
    row = conn.execute(
        sa.select(api_keys.c.balance, api_keys.c.reserved, api_keys.c.revoked_at).where(
            api_keys.c.id == key_id
        )
    ).first()
    if row is None or row.revoked_at is not None:
        return FailedToAuth("the API key is unknown or revoked")
    if row.balance is None:  # unlimited: only the sum of its holds can refuse it
        return InvalidRequest(
            f"this request may cost up to {format_money(amount_nanos)}, and the key already holds "
            f"{format_money(row.reserved)} for requests in flight: together more than "
            f"{format_money(MAX_NANOS)}, the largest amount Loupe stores; lower max_tokens or wait",
            param="max_tokens",
        )
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


def _to_reservation(row: Any) -> Reservation:
    return Reservation(row["request_id"], row["key_id"], row["model"], row["amount"], row["created_at"], row["owner"])


def _to_entry(row: Any) -> LedgerEntry:
    outcome = Outcome(
        status=row["status"],
        charged=bool(row["charged"]),
        text_tokens=row["text_tokens"],
        image_tokens=row["image_tokens"],
        completion_tokens=row["completion_tokens"],
        cost_nanos=row["cost"],
        video_tokens=row["video_tokens"],
    )
    tags = Tags(row["user"], row["safety_identifier"], tuple(sorted((row["request_metadata"] or {}).items())))
    return LedgerEntry(
        row["request_id"], row["key_id"], row["model"], outcome, row["created_at"], row["finished_at"], tags
    )
