"""The `loupe` command: serve, estimate, doctor, keys, usage, db, tiny-model."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import click
import typer

from loupe import __version__
from loupe.cli_accounts import db_app, keys_app, usage
from loupe.cli_doctor import doctor
from loupe.cli_output import (
    ConfigOption,
    DbOption,
    DeviceOption,
    HostOption,
    ModelOption,
    PortOption,
    fail,
    note,
    one_line,
    print_json,
)
from loupe.errors import LoupeError

HELP = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    context_settings=HELP,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Loupe: vision-language models behind the OpenAI chat-completions API.",
)
app.add_typer(keys_app, name="keys", context_settings=HELP)
app.add_typer(db_app, name="db", context_settings=HELP)
app.command("usage")(usage)
app.command("doctor")(doctor)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"loupe {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version and exit")
    ] = False,
) -> None:
    """Loupe: vision-language models behind the OpenAI chat-completions API."""


# typer 0.29 raises its own copies of click's exceptions; earlier releases raise click's.
_USAGE_ERRORS = (click.ClickException, getattr(typer, "TyperException", click.ClickException))
_ABORTS = (click.Abort, typer.Abort)


def main(argv: Sequence[str] | None = None) -> None:
    """The console script: usage errors and refusals on one line, never a traceback."""
    command = typer.main.get_command(app)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        status = command.main(args=args, prog_name="loupe", standalone_mode=False)
    except _USAGE_ERRORS as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # a group run without a command: its help
            typer.echo(exc.format_message(), err=True)
        else:
            note(f"error: {one_line(exc)}")
        sys.exit(getattr(exc, "exit_code", 2))
    except _ABORTS:
        note("aborted")
        sys.exit(130)
    except LoupeError as exc:
        note(f"error: {exc.message}")
        sys.exit(1)
    sys.exit(status if isinstance(status, int) else 0)


@app.command()
def serve(
    model: ModelOption = None,
    config: ConfigOption = None,
    host: HostOption = None,
    port: PortOption = None,
    allow_media_host: Annotated[
        list[str] | None,
        typer.Option("--allow-media-host", metavar="HOST", help="Allow fetching images from this private host; repeatable"),
    ] = None,
    device: DeviceOption = None,
    dtype: Annotated[
        str | None,
        typer.Option(metavar="DTYPE", help="auto (bfloat16 where the CPU multiplies it natively), float32, bfloat16 or float16"),
    ] = None,
    db: DbOption = None,
    redis: Annotated[
        str | None, typer.Option(metavar="URL", help="redis:// URL for rate limits shared by processes")
    ] = None,
    log_level: Annotated[str, typer.Option(metavar="LEVEL", help="debug, info, warning or error")] = "info",
    log_format: Annotated[
        str, typer.Option(metavar="auto|json|text", help="Logs as JSON lines, or text; auto: text on a terminal")
    ] = "auto",
) -> None:
    """Load the models and serve the OpenAI-compatible API."""
    if log_format not in ("auto", "json", "text"):
        fail(f"--log-format is auto, json or text, not {log_format!r}", 2)
    from loupe.api.server import serve as serve_http
    from loupe.compose import build_app, connection_limits, load_models
    from loupe.compose_billing import check_exposure, describe_database, open_billing
    from loupe.logs import configure as configure_logs
    from loupe.service.metrics import Metrics
    from loupe.settings import load_settings

    try:
        settings = load_settings(config, models=tuple(model or ()), overrides=_overrides(host, port, allow_media_host, device, db, redis, dtype))
        _check_address(settings.host, settings.port)
        note(f"database: {describe_database(settings.db)}")
        billing = open_billing(settings)
        runs_open = check_exposure(settings, billing)
        metrics = Metrics(served=[m.id for m in settings.models])
        with _status("loading models") as status:
            served = load_models(settings, metrics, lambda m: status.update(f"loading {m.id} from {m.checkpoint}"))
        web = build_app(settings, served, billing, metrics)
    except LoupeError as exc:
        fail(exc.message)
    for served_model in served.values():
        card = served_model.engine.card
        prices = card.prices
        note(
            f"model {card.id}  family={card.family}  context={card.context_size}  max_images={card.max_images}  "
            f"price per 1M tokens: in {prices.input_per_m} / out {prices.output_per_m} {prices.currency}"
        )
        if served_model.compute is not None:
            compute = served_model.compute
            note(f"      computes on {compute.device} in {compute.dtype} ({compute.reason})")
    if runs_open:
        note("no API key exists: serving OPEN on loopback (any client, no billing); `loupe keys create` ends that")
    base = f"http://{settings.host}:{settings.port}"
    note(f"ready: {base}/  (API {base}/v1, playground {base}/playground, docs {base}/docs)")
    configure_logs(log_level, log_format)
    serve_http(web, settings.host, settings.port, connection_limits(settings), log_level)


def _check_address(host: str, port: int) -> None:
    """Fail at once, before loading models for a minute, when the address cannot be listened on."""
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind(address)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        fail(f"cannot listen on {host}:{port}: {reason}; is another server running there? Choose another --port")


def _overrides(
    host: str | None,
    port: int | None,
    media_hosts: list[str] | None,
    device: str | None,
    db: str | None,
    redis: str | None,
    dtype: str | None = None,
) -> dict[str, Any]:
    overrides: dict[str, Any] = {"db": db, "redis": redis, "host": host, "port": port, "engine.device": device}
    if dtype is not None:
        overrides["engine.dtype"] = dtype
    if media_hosts:
        overrides["fetch.allow_media_hosts"] = tuple(media_hosts)
    return overrides


def _status(text: str) -> Any:
    from rich.console import Console

    return Console(stderr=True).status(text)


@app.command()
def estimate(
    images: Annotated[list[Path], typer.Argument(metavar="IMAGE...", help="Image files", exists=True, dir_okay=False)],
    model: Annotated[str, typer.Option("--model", "-m", metavar="MODEL", help="Model id from --config, or a checkpoint")],
    config: Annotated[Path | None, typer.Option("--config", "-c", metavar="FILE", help="loupe.toml (prices, limits)")] = None,
    detail: Annotated[str | None, typer.Option(metavar="low|high|auto", help="Detail for every image (default auto)")] = None,
    text: Annotated[str, typer.Option(metavar="TEXT", help="The text sent with the images")] = "",
    max_tokens: Annotated[int | None, typer.Option(metavar="N", min=1, help="Completion allowance")] = None,
    json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
) -> None:
    """Count a request's tokens and cost from image headers, offline: no weights, no server."""
    from loupe.domain import Detail
    from loupe.offline import estimate_files
    from loupe.settings import load_settings, model_id_for

    try:
        chosen = None if detail is None else Detail(detail)
    except ValueError:
        fail(f"unknown detail {detail!r}; use low, high or auto", 2)
    try:
        settings = load_settings(config, models=() if config else (model,))
        model_id = model if config else model_id_for(model)
        result = estimate_files(settings, model_id, images, detail=chosen, text=text, max_tokens=max_tokens)
    except LoupeError as exc:
        fail(exc.message)
    if json:
        from loupe.api.convert import estimate_to_wire

        print_json(estimate_to_wire(result).model_dump())
        return
    _estimate_table(result, images)


def _estimate_table(result: Any, images: list[Path]) -> None:
    from loupe.cli_output import print_table

    rows = [
        (
            str(image.index), path.name, f"{image.width}x{image.height}",
            image.detail.value if image.detail else "-", image.detail_applied.value,
            f"{image.resized_width}x{image.resized_height}", str(image.tokens),
        )
        for image, path in zip(result.images, images, strict=True)
    ]
    columns = ("#", "file", "size", "detail", "applied", "processed at", "tokens")
    print_table(columns, rows, title=f"{result.model}: pre-flight estimate")
    currency = result.prices.currency
    typer.echo(
        f"prompt_tokens={result.prompt_tokens} image_tokens={result.image_tokens} "
        f"text_tokens={result.text_tokens} max_completion_tokens={result.max_completion_tokens}"
    )
    typer.echo(f"cost {currency}: prompt only {result.cost_min:f}, with the full completion {result.cost_max:f}")


@app.command("tiny-model")
def tiny_model(
    family: Annotated[str, typer.Argument(metavar="FAMILY", help="Model family, e.g. qwen2-vl or smolvlm")],
    out_dir: Annotated[Path, typer.Argument(metavar="DIR", help="Directory to write the checkpoint to")],
    hidden_size: Annotated[int | None, typer.Option(metavar="N", min=8, help="Text model hidden size")] = None,
    layers: Annotated[int | None, typer.Option(metavar="N", min=1, help="Text model layers")] = None,
) -> None:
    """Write a random-weight checkpoint of a real VLM architecture, built offline."""
    from loupe.testing.tiny import FAMILIES, build_tiny_checkpoint

    if family not in FAMILIES:
        fail(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}", 2)
    path = build_tiny_checkpoint(family, out_dir, hidden_size=hidden_size, layers=layers)
    note(f"wrote a tiny {family} checkpoint to {path}")
    typer.echo(str(path))


@app.command("real-size-model")
def real_size_model(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Published model, e.g. SmolVLM-256M-Instruct or Qwen2-VL-2B-Instruct")],
    out_dir: Annotated[Path, typer.Argument(metavar="DIR", help="Directory to write the checkpoint to")],
) -> None:
    """Write a random-weight checkpoint with a published model's dimensions, built offline: it
    costs what the real model costs in memory and compute (for benchmarks and sizing a machine)."""
    from loupe.testing.tiny.real_size import REAL_SIZES, build_real_size_checkpoint

    if name not in REAL_SIZES:
        fail(f"unknown model {name!r}; choose one of {', '.join(REAL_SIZES)}", 2)
    path = build_real_size_checkpoint(name, out_dir)
    note(f"wrote a random-weight {name} checkpoint to {path}")
    typer.echo(str(path))
