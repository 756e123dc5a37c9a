"""/admin: keys and usage for operators, behind an admin API key."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from loupe.api.auth import caller_dependency
from loupe.api.openapi import errors
from loupe.api.routes.usage import GroupBy, moment, period, usage_object
from loupe.api.state import AppState
from loupe.billing import ApiKey, format_money
from loupe.billing.money import MAX_AMOUNT
from loupe.service.accounts import Caller


_EXACT_FLOAT_DIGITS = 15  # a decimal of at most 15 significant digits survives a float exactly


def _exact_number(value: object) -> object:
    """A JSON number reaches the server as a float: refuse one too long to hold every digit sent."""
    if isinstance(value, float) and len(Decimal(repr(value)).as_tuple().digits) > _EXACT_FLOAT_DIGITS:
        raise ValueError(
            f"a JSON number keeps only {_EXACT_FLOAT_DIGITS} significant digits; send this amount as a string"
        )
    return value


# Amounts of money: up to 9 decimals and at most what the database holds (see docs/billing.md).
_AMOUNT = "currency units, up to 9 decimals and at most 9223372036.854775807; a string keeps every digit"
Amount = Annotated[
    Decimal, Field(ge=0, le=MAX_AMOUNT, decimal_places=9, description=_AMOUNT), BeforeValidator(_exact_number)
]
PositiveAmount = Annotated[
    Decimal, Field(gt=0, le=MAX_AMOUNT, decimal_places=9, description=_AMOUNT), BeforeValidator(_exact_number)
]


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    balance: Amount | None = None
    rpm: int | None = Field(None, ge=1)
    tpm: int | None = Field(None, ge=1)
    models: list[str] | None = None
    is_admin: bool = False


class TopUp(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: PositiveAmount


def key_object(key: ApiKey) -> dict[str, Any]:
    """A key as operators see it: never its secret, money as decimal strings."""
    data = asdict(key)
    for name, value in list(data.items()):
        if name.endswith("_nanos"):
            data[name.removesuffix("_nanos")] = None if value is None else format_money(value)
            del data[name]
        elif isinstance(value, datetime):
            data[name] = value.isoformat()
        elif isinstance(value, frozenset):
            data[name] = sorted(value)
    data.pop("secret_hash", None)
    return {"object": "api_key", **data}


def router(state: AppState) -> APIRouter:
    api = APIRouter(prefix="/admin", tags=["admin"], responses=errors(401, 403))
    caller_of = caller_dependency(state.accounts, fresh=True)  # never a kept caller for admin calls
    keys = state.accounts.billing.keys

    async def admin(caller: Caller = Depends(caller_of)) -> Caller:
        state.accounts.require_admin(caller)
        return caller

    @api.get("/keys", dependencies=[Depends(admin)], summary="List API keys")
    async def list_keys() -> dict[str, Any]:
        found = await anyio.to_thread.run_sync(keys.list_keys)
        return {"object": "list", "data": [key_object(k) for k in found]}

    @api.post("/keys", dependencies=[Depends(admin)], summary="Create an API key; the secret is shown once")
    async def create_key(body: NewKey) -> dict[str, Any]:
        def create() -> Any:
            return keys.create(
                body.name, balance=body.balance, rpm=body.rpm, tpm=body.tpm, models=body.models, is_admin=body.is_admin
            )

        created = await anyio.to_thread.run_sync(create)
        state.accounts.forget()  # the server may have run open
        return {**key_object(created.key), "secret": created.secret}

    @api.post("/keys/{key_id}/revoke", dependencies=[Depends(admin)], responses=errors(404), summary="Revoke an API key")
    async def revoke_key(key_id: str) -> dict[str, Any]:
        revoked = await anyio.to_thread.run_sync(keys.revoke, key_id)
        state.accounts.forget()
        return key_object(revoked)

    @api.post("/keys/{key_id}/top-up", dependencies=[Depends(admin)], responses=errors(404), summary="Add to a key's balance")
    async def top_up(key_id: str, body: TopUp) -> dict[str, Any]:
        topped = await anyio.to_thread.run_sync(keys.top_up, key_id, body.amount)
        state.accounts.forget()
        return key_object(topped)

    @api.get("/usage", dependencies=[Depends(admin)], summary="Usage of every key, or of one")
    async def usage(
        start: datetime | None = moment("from (default: 30 days before `end`)"),
        end: datetime | None = moment("until (default: now)"),
        group_by: GroupBy = None,
        key_id: str | None = None,
    ) -> dict[str, Any]:
        begin, stop = period(start, end)
        return usage_object(await state.accounts.usage(key_id, begin, stop, group_by), begin, stop)

    return api
