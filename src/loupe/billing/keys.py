"""API keys: create, look up by secret, list, revoke and top up.

A secret is `lp-` and 40 URL-safe characters (240 random bits), shown once at creation. Only its
SHA-256 is stored: with that much entropy a fast hash cannot be brute-forced, while a salted slow
hash (bcrypt, argon2) would cost milliseconds on every request and rule out an indexed lookup.
Admin rights are a flag on a key (`is_admin`); the first admin key is made from the CLI by whoever
can reach the database.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from loupe.billing.clock import Clock, utc_now
from loupe.billing.db import Database
from loupe.billing.money import MAX_NANOS, MoneyInput, format_money, to_nanos
from loupe.billing.tables import api_keys
from loupe.errors import InvalidRequest, NotFound

SECRET_PREFIX = "lp-"
_SECRET_BYTES = 30  # 40 URL-safe characters


def generate_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(_SECRET_BYTES)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as stored. Money is in nano-units; `balance_nanos` None means unlimited.

    `models` None means every model. `secret_hint` is the first characters of the secret, to
    tell keys apart in listings.
    """

    id: str
    name: str
    secret_hint: str
    is_admin: bool
    balance_nanos: int | None
    reserved_nanos: int
    rpm: int | None
    tpm: int | None
    models: frozenset[str] | None
    created_at: datetime
    revoked_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def available_nanos(self) -> int | None:
        """Balance not held by open reservations; None when unlimited."""
        if self.balance_nanos is None:
            return None
        return self.balance_nanos - self.reserved_nanos

    def allows(self, model: str) -> bool:
        return self.models is None or model in self.models


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A new key and its secret: the only time the secret is available."""

    key: ApiKey
    secret: str


class KeyStore:
    """Key administration and lookup on one database."""

    def __init__(self, db: Database, clock: Clock = utc_now) -> None:
        self._db = db
        self._clock = clock

    def create(
        self,
        name: str,
        *,
        balance: MoneyInput | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        models: Iterable[str] | None = None,
        is_admin: bool = False,
    ) -> CreatedKey:
        """Create a key. `balance` is in currency ("12.50"); None makes the key unlimited.

        Raises InvalidRequest for an empty name, a negative balance or a limit below 1.
        """
        name = name.strip()
        if not name or len(name) > 200:
            raise InvalidRequest("a key name must be 1 to 200 characters", param="name")
        _check_limit(rpm, "rpm")
        _check_limit(tpm, "tpm")
        model_list = _model_list(models)
        secret = generate_secret()
        values = {
            "id": "key_" + secrets.token_hex(12),
            "name": name,
            "secret_hash": hash_secret(secret),
            "secret_hint": secret[:7],
            "is_admin": is_admin,
            "balance": None if balance is None else _nanos(balance, "balance"),
            "reserved": 0,
            "rpm": rpm,
            "tpm": tpm,
            "models": model_list,
            "created_at": self._clock(),
            "revoked_at": None,
        }
        with self._db.write() as conn:
            conn.execute(sa.insert(api_keys).values(values))
        return CreatedKey(key=_to_key(values), secret=secret)

    def get(self, key_id: str) -> ApiKey:
        """The key with this id, revoked or not. Raises NotFound."""
        with self._db.read() as conn:
            row = conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).mappings().first()
        if row is None:
            raise NotFound(f"no API key with id {key_id!r}", param="key_id")
        return _to_key(row)

    def find_by_secret(self, secret: str) -> ApiKey | None:
        """The key whose secret this is (revoked included), or None."""
        query = sa.select(api_keys).where(api_keys.c.secret_hash == hash_secret(secret))
        with self._db.read() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else _to_key(row)

    def list_keys(self, *, include_revoked: bool = True) -> list[ApiKey]:
        query = sa.select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
        if not include_revoked:
            query = query.where(api_keys.c.revoked_at.is_(None))
        with self._db.read() as conn:
            return [_to_key(row) for row in conn.execute(query).mappings()]

    def any_active(self) -> bool:
        """Whether any key is live: without one, a loopback server runs open."""
        query = sa.select(api_keys.c.id).where(api_keys.c.revoked_at.is_(None)).limit(1)
        with self._db.read() as conn:
            return conn.execute(query).first() is not None

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key (it stays listed, and its ledger rows stay). Idempotent. Raises NotFound."""
        with self._db.write() as conn:
            conn.execute(
                sa.update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=self._clock())
            )
        return self.get(key_id)

    def top_up(self, key_id: str, amount: MoneyInput) -> ApiKey:
        """Add `amount` (currency, > 0) to a key's balance, atomically.

        Raises NotFound, or InvalidRequest for a non-positive amount, an unlimited key, or a sum
        beyond the largest balance (`MAX_NANOS`); nothing changes when it raises.
        """
        nanos = _nanos(amount, "amount")
        if nanos <= 0:
            raise InvalidRequest("a top-up must be more than 0", param="amount")
        with self._db.write() as conn:
            added = conn.execute(
                sa.update(api_keys)
                .where(
                    api_keys.c.id == key_id,
                    api_keys.c.balance.is_not(None),
                    api_keys.c.balance <= MAX_NANOS - nanos,  # the sum fits, computed without overflow
                )
                .values(balance=api_keys.c.balance + nanos)
            ).rowcount
        key = self.get(key_id)
        if added == 1:
            return key
        if key.balance_nanos is None:
            raise InvalidRequest(f"key {key_id} is unlimited; it has no balance to top up")
        raise InvalidRequest(
            f"a top-up of {format_money(nanos)} would take the balance of {format_money(key.balance_nanos)} past "
            f"{format_money(MAX_NANOS)}, the largest amount Loupe stores; top up at most "
            f"{format_money(max(MAX_NANOS - key.balance_nanos, 0))}",
            param="amount",
        )


def _nanos(value: MoneyInput, what: str) -> int:
    try:
        return to_nanos(value, what=what)
    except ValueError as exc:
        raise InvalidRequest(str(exc), param=what) from None


def _check_limit(value: int | None, what: str) -> None:
    if value is not None and (isinstance(value, bool) or value < 1):
        raise InvalidRequest(f"{what} must be at least 1, or unset for no limit", param=what)


def _model_list(models: Iterable[str] | None) -> list[str] | None:
    if models is None:
        return None
    listed = sorted({m.strip() for m in models})
    if not listed or "" in listed:
        raise InvalidRequest("allowed models must be non-empty ids (omit them to allow all)")
    return listed


def _to_key(row: Any) -> ApiKey:
    models = row["models"]
    return ApiKey(
        id=row["id"],
        name=row["name"],
        secret_hint=row["secret_hint"],
        is_admin=bool(row["is_admin"]),
        balance_nanos=row["balance"],
        reserved_nanos=row["reserved"],
        rpm=row["rpm"],
        tpm=row["tpm"],
        models=None if models is None else frozenset(models),
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )
