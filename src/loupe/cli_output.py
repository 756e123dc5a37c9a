"""How the `loupe` command talks: one-line errors, tables or JSON, and validated option values.

Tables go to standard output: a rich table on a terminal (ids never cut), tab-separated lines
when piped (for `cut`, `grep` and `xargs`), JSON objects with `--json`. Notes and errors go to
standard error, so a pipe only ever carries data.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

err = Console(stderr=True, highlight=False)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]
# The options `loupe serve` and `loupe doctor` share, so that doctor answers for the same command line.
ModelOption = Annotated[
    list[str] | None, typer.Option("--model", "-m", metavar="CHECKPOINT", help="Hub id or local path; repeatable")
]
ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", metavar="FILE", help="loupe.toml")]
HostOption = Annotated[str | None, typer.Option(metavar="ADDRESS", help="Address to listen on (default 127.0.0.1)")]
PortOption = Annotated[int | None, typer.Option(metavar="PORT", help="Port (default 8000)")]
DeviceOption = Annotated[str | None, typer.Option(metavar="auto|cpu|cuda", help="Where the models run")]
DbOption = Annotated[
    str | None,
    typer.Option(metavar="URL", help="Database: a SQLite path or postgresql:// URL (default: the config's, else Loupe's data directory)"),
]


def fail(message: str, status: int = 1) -> NoReturn:
    """Print `error: message` on one line and exit with `status`."""
    err.print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)
    raise typer.Exit(status)


def note(message: str) -> None:
    """A line for the person at the terminal, on standard error."""
    err.print(message, markup=False, soft_wrap=True)


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


def print_table(columns: Sequence[str], rows: Sequence[Sequence[str]], *, title: str | None = None) -> None:
    """A table on a terminal (the first column, an id, is never cut); tab-separated when piped."""
    if not sys.stdout.isatty():
        for row in rows:
            typer.echo("\t".join(row))
        return
    table = Table(title=title)
    for i, column in enumerate(columns):
        table.add_column(column, no_wrap=i == 0, overflow="fold")
    for row in rows:
        table.add_row(*row)
    Console().print(table)


def _amount(text: str, *, positive: bool) -> Decimal:
    """A money amount: a plain decimal number, at most 9 decimals; `positive` also refuses 0."""
    text = str(text).strip()
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise typer.BadParameter(f"{text!r} is not an amount; write a decimal number such as 10 or 2.50") from None
    if not amount.is_finite() or amount < 0 or (positive and amount == 0):
        raise typer.BadParameter(f"{text!r} is not an amount {'above' if positive else 'of at least'} 0")
    if amount != amount.quantize(Decimal("1e-9"), rounding=ROUND_DOWN):
        raise typer.BadParameter(f"{text!r} has more than 9 decimals")
    return amount


def balance_amount(text: str) -> Decimal:
    return _amount(text, positive=False)


def positive_amount(text: str) -> Decimal:
    return _amount(text, positive=True)


def one_line(error: Exception) -> str:
    """A usage error as one line, with the command that shows the help."""
    message = str(getattr(error, "format_message", error.__str__)()).replace("\n", " ")
    ctx = getattr(error, "ctx", None)
    if ctx is None:
        return message
    return f"{message} (see '{ctx.command_path} -h')"
