"""`loupe keys`, `loupe usage` and `loupe db`: operators' commands on the billing database.

Each command names the database it used (on standard error), so that a key made in one place
is never looked for in another.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from loupe.billing import ApiKey, Billing, format_money
from loupe.cli_output import ConfigOption, DbOption, JsonOption, balance_amount, fail, note, positive_amount, print_json, print_table
from loupe.errors import LoupeError
from loupe.settings import Settings

T = TypeVar("T")

keys_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Create, list, revoke and top up API keys.")
db_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="The billing database.")



def _settings(config: Path | None, db: str | None) -> Settings:
    from loupe.settings import load_settings

    return _run(lambda: load_settings(config, overrides={"db": db}))


def _billing(settings: Settings) -> Billing:
    from loupe.compose_billing import describe_database, open_billing

    note(f"database: {describe_database(settings.db)}")
    return _run(lambda: open_billing(settings))


def _run(action: Callable[[], T]) -> T:
    try:
        return action()
    except LoupeError as exc:
        fail(exc.message)


def _money(nanos: int | None) -> str:
    return "unlimited" if nanos is None else format_money(nanos)


def key_json(key: ApiKey) -> dict[str, Any]:
    """A key as JSON: every stored field but the secret's hash; money as decimal strings."""
    return {
        "id": key.id,
        "name": key.name,
        "secret_hint": key.secret_hint,
        "admin": key.is_admin,
        "balance": None if key.balance_nanos is None else format_money(key.balance_nanos),
        "reserved": format_money(key.reserved_nanos),
        "rpm": key.rpm,
        "tpm": key.tpm,
        "models": None if key.models is None else sorted(key.models),
        "created_at": key.created_at.isoformat(),
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


def _model_ids(models: str | None, settings: Settings, config: Path | None) -> list[str] | None:
    """`--models a,b` as a list. With a config, every id must be one of its models."""
    if models is None:
        return None
    listed = [m.strip() for m in models.split(",") if m.strip()]
    if not listed:
        fail("--models needs at least one model id (omit it to allow every model)", 2)
    if config is None:
        note("note: model ids are not checked without --config")
        return listed
    served = [m.id for m in settings.models]
    for model in listed:
        if model not in served:
            close = difflib.get_close_matches(model, served, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            fail(f"--models: {model!r} is not a model of {config}; {hint}its models: {', '.join(served)}", 2)
    return listed


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Option(metavar="NAME", help="A name to tell the key apart")],
    balance: Annotated[
        Decimal | None,
        typer.Option(metavar="AMOUNT", parser=balance_amount, help="Prepaid balance; omitted: unlimited"),
    ] = None,
    rpm: Annotated[int | None, typer.Option(metavar="N", min=1, help="Requests per minute")] = None,
    tpm: Annotated[int | None, typer.Option(metavar="N", min=1, help="Tokens per minute (image tokens included)")] = None,
    models: Annotated[str | None, typer.Option(metavar="IDS", help="Comma-separated model ids; omitted: all")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="May use /admin endpoints")] = False,
    json: JsonOption = False,
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Create a key. The secret is printed once, alone on the last line."""
    settings = _settings(config, db)
    allowed = _model_ids(models, settings, config)
    billing = _billing(settings)
    created = _run(
        lambda: billing.keys.create(name, balance=balance, rpm=rpm, tpm=tpm, models=allowed, is_admin=admin)
    )
    if json:
        print_json({**key_json(created.key), "secret": created.secret})
        return
    note(f"created key {created.key.id} ({created.key.name}); keep the secret below, it is not shown again")
    typer.echo(created.secret)


@keys_app.command("list")
def list_keys(json: JsonOption = False, config: ConfigOption = None, db: DbOption = None) -> None:
    """List keys (secrets are never stored, only their hash)."""
    found = _run(lambda: _billing(_settings(config, db)).keys.list_keys())
    if json:
        print_json([key_json(key) for key in found])
        return
    if not found:
        note("no keys: the server runs open on loopback. Make one with `loupe keys create --name NAME`")
        return
    columns = ("id", "name", "hint", "admin", "balance", "reserved", "rpm", "tpm", "models", "revoked")
    rows = [
        (
            key.id, key.name, key.secret_hint, "yes" if key.is_admin else "", _money(key.balance_nanos),
            _money(key.reserved_nanos), str(key.rpm or "-"), str(key.tpm or "-"),
            ",".join(sorted(key.models)) if key.models else "all", key.revoked_at.isoformat() if key.revoked_at else "",
        )
        for key in found
    ]
    print_table(columns, rows)


@keys_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(metavar="KEY_ID", help="The key's id (key_...), from `loupe keys list`")],
    json: JsonOption = False,
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Revoke a key; its ledger rows stay."""
    key = _run(lambda: _billing(_settings(config, db)).keys.revoke(key_id))
    if json:
        print_json(key_json(key))
        return
    typer.echo(f"revoked {key.id} ({key.name})")


@keys_app.command("top-up", context_settings={"ignore_unknown_options": True})
def top_up(
    key_id: Annotated[str, typer.Argument(metavar="KEY_ID", help="The key's id (key_...)")],
    amount: Annotated[
        Decimal, typer.Argument(metavar="AMOUNT", parser=positive_amount, help="What to add, e.g. 10")
    ],
    json: JsonOption = False,
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Add AMOUNT to a key's balance."""
    key = _run(lambda: _billing(_settings(config, db)).keys.top_up(key_id, amount))
    if json:
        print_json(key_json(key))
        return
    typer.echo(f"{key.id} balance {_money(key.balance_nanos)}")


@db_app.command("upgrade")
def upgrade(config: ConfigOption = None, db: DbOption = None) -> None:
    """Run the database migrations (the server also runs them at start-up)."""
    _billing(_settings(config, db))
    typer.echo("database is up to date")


USAGE_COLUMNS = ("requests", "prompt_tokens", "image_tokens", "video_tokens", "completion_tokens", "cost")


def usage(
    key: Annotated[str | None, typer.Option("--key", metavar="KEY_ID", help="One key's id; omitted: every key")] = None,
    start: Annotated[datetime | None, typer.Option(metavar="TIME", help="From (UTC); default 30 days ago")] = None,
    end: Annotated[datetime | None, typer.Option(metavar="TIME", help="To (UTC); default now")] = None,
    group_by: Annotated[str | None, typer.Option(metavar="model|day|user|metadata.KEY", help="Group by model, day, user or a metadata key")] = None,
    json: JsonOption = False,
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Requests, tokens (image tokens apart) and cost from the ledger."""
    from loupe.api.routes.usage import period

    if group_by is not None and group_by not in ("model", "day", "user") and not group_by.startswith("metadata."):
        fail("--group-by is model, day, user or metadata.KEY", 2)
    begin, stop = _run(lambda: period(start, end))
    billing = _billing(_settings(config, db))
    report = _run(lambda: billing.usage(key, begin, stop, group_by))
    groups = [(g.group or "(none)", g.totals.as_dict()) for g in report.groups]
    rows = groups + [("total", report.totals.as_dict())]
    if json:
        print_json({
            "start": begin.isoformat(), "end": stop.isoformat(), "key": key, "group_by": group_by,
            "groups": [{"group": name, **values} for name, values in rows[:-1]], "totals": rows[-1][1],
        })
        return
    title = f"usage {begin:%Y-%m-%d %H:%M} .. {stop:%Y-%m-%d %H:%M} UTC"
    print_table(("group", *USAGE_COLUMNS), [(name, *(str(v[c]) for c in USAGE_COLUMNS)) for name, v in rows], title=title)
