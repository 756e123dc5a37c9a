"""`loupe keys`, `loupe usage` and `loupe db`: operators' commands on the billing database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from loupe.billing import Billing, format_money
from loupe.errors import LoupeError

T = TypeVar("T")

keys_app = typer.Typer(no_args_is_help=True, help="Create, list, revoke and top up API keys.")
db_app = typer.Typer(no_args_is_help=True, help="The billing database.")
err = Console(stderr=True)
out = Console()

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="loupe.toml")]
DbOption = Annotated[str | None, typer.Option(help="Database URL (default: the config's, else sqlite:///loupe.db)")]


def _billing(config: Path | None, db: str | None) -> Billing:
    from loupe.compose import open_billing
    from loupe.settings import load_settings

    return open_billing(load_settings(config, overrides={"db": db}))


def _run(action: Callable[[], T]) -> T:
    try:
        return action()
    except LoupeError as exc:
        err.print(f"[bold red]error:[/] {exc.message}")
        raise typer.Exit(1) from None
    except ValueError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None


def _money(nanos: int | None) -> str:
    return "unlimited" if nanos is None else format_money(nanos)


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Option(help="A name to tell the key apart")],
    balance: Annotated[str | None, typer.Option(help="Prepaid balance; omitted: unlimited")] = None,
    rpm: Annotated[int | None, typer.Option(help="Requests per minute")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute (image tokens included)")] = None,
    models: Annotated[str | None, typer.Option(help="Comma-separated model ids; omitted: all")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="May use /admin endpoints")] = False,
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Create a key. The secret is printed once, alone on the last line."""
    allowed = [m.strip() for m in models.split(",") if m.strip()] if models else None
    created = _run(
        lambda: _billing(config, db).keys.create(
            name, balance=None if balance is None else Decimal(balance), rpm=rpm, tpm=tpm, models=allowed, is_admin=admin
        )
    )
    err.print(f"created key {created.key.id} ({name}); keep the secret below, it is not shown again")
    typer.echo(created.secret)


@keys_app.command("list")
def list_keys(config: ConfigOption = None, db: DbOption = None) -> None:
    """List keys (secrets are never stored, only their hash)."""
    found = _run(lambda: _billing(config, db).keys.list_keys())
    table = Table()
    for column in ("id", "name", "hint", "admin", "balance", "reserved", "rpm", "tpm", "models", "revoked"):
        table.add_column(column)
    for key in found:
        table.add_row(
            key.id, key.name, key.secret_hint, "yes" if key.is_admin else "", _money(key.balance_nanos),
            _money(key.reserved_nanos), str(key.rpm or "-"), str(key.tpm or "-"),
            ",".join(sorted(key.models)) if key.models else "all", key.revoked_at.isoformat() if key.revoked_at else "",
        )
    out.print(table)


@keys_app.command("revoke")
def revoke(key_id: str, config: ConfigOption = None, db: DbOption = None) -> None:
    """Revoke a key; its ledger rows stay."""
    key = _run(lambda: _billing(config, db).keys.revoke(key_id))
    typer.echo(f"revoked {key.id} ({key.name})")


@keys_app.command("top-up")
def top_up(key_id: str, amount: str, config: ConfigOption = None, db: DbOption = None) -> None:
    """Add AMOUNT to a key's balance."""
    key = _run(lambda: _billing(config, db).keys.top_up(key_id, Decimal(amount)))
    typer.echo(f"{key.id} balance {_money(key.balance_nanos)}")


@db_app.command("upgrade")
def upgrade(config: ConfigOption = None, db: DbOption = None) -> None:
    """Run the database migrations (the server also runs them at start-up)."""
    _run(lambda: _billing(config, db))
    typer.echo("database is up to date")


def usage(
    key: Annotated[str | None, typer.Option("--key", help="One key's id; omitted: every key")] = None,
    start: Annotated[datetime | None, typer.Option(help="From (UTC); default 30 days ago")] = None,
    end: Annotated[datetime | None, typer.Option(help="To (UTC); default now")] = None,
    group_by: Annotated[str | None, typer.Option(help="model or day")] = None,
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Requests, tokens (image tokens apart) and cost from the ledger."""
    from loupe.api.routes.usage import period

    if group_by not in (None, "model", "day"):
        err.print("[bold red]error:[/] --group-by is model or day")
        raise typer.Exit(2)
    begin, stop = _run(lambda: period(start, end))
    report = _run(lambda: _billing(config, db).usage(key, begin, stop, group_by))
    table = Table(title=f"usage {begin:%Y-%m-%d %H:%M} .. {stop:%Y-%m-%d %H:%M} UTC")
    for column in ("group", "requests", "prompt_tokens", "image_tokens", "completion_tokens", "cost"):
        table.add_column(column, justify="left" if column == "group" else "right")
    rows = [(g.group, g.totals) for g in report.groups] + [("total", report.totals)]
    for name, totals in rows:
        values = totals.as_dict()
        table.add_row(name, *(str(values[c]) for c in ("requests", "prompt_tokens", "image_tokens", "completion_tokens", "cost")))
    out.print(table)
