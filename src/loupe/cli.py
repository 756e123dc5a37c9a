"""The `loupe` command: serve, tiny-model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from loupe.cli_accounts import db_app, keys_app, usage
from loupe.errors import LoupeError

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Loupe: VLMs behind the OpenAI API.")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
app.command("usage")(usage)
console = Console(stderr=True)


def main() -> None:
    app()


def _fail(error: LoupeError, status: int = 1) -> typer.Exit:
    console.print(f"[bold red]error:[/] {error.message}")
    return typer.Exit(status)


@app.command()
def serve(
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="Hub id or local path; repeatable")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="loupe.toml")] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000)")] = None,
    allow_media_host: Annotated[
        list[str] | None,
        typer.Option("--allow-media-host", help="Allow fetching images from this private host; repeatable"),
    ] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda")] = None,
    dtype: Annotated[
        str | None, typer.Option(help="auto (bfloat16 where the hardware has it), float32, bfloat16 or float16")
    ] = None,
    db: Annotated[str | None, typer.Option(help="Database URL (default sqlite:///loupe.db)")] = None,
    redis: Annotated[str | None, typer.Option(help="redis:// URL for rate limits shared by processes")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
) -> None:
    """Load the models and serve the OpenAI-compatible API."""
    import uvicorn

    from loupe.compose import build_app, check_exposure, load_models, open_billing
    from loupe.logs import configure as configure_logs
    from loupe.service.metrics import Metrics
    from loupe.settings import load_settings

    overrides: dict[str, Any] = {"db": db, "redis": redis}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if allow_media_host:
        overrides["fetch.allow_media_hosts"] = tuple(allow_media_host)
    if device is not None:
        overrides["engine.device"] = device
    if dtype is not None:
        overrides["engine.dtype"] = dtype
    try:
        settings = load_settings(config, models=tuple(model or ()), overrides=overrides)
        billing = open_billing(settings)
        runs_open = check_exposure(settings, billing)
        metrics = Metrics()
        with console.status("loading models") as status:
            served = load_models(settings, metrics, lambda m: status.update(f"loading {m.id} from {m.checkpoint}"))
        web = build_app(settings, served, billing, metrics)
    except LoupeError as exc:
        raise _fail(exc) from None
    for served_model in served.values():
        card = served_model.engine.card
        prices = card.prices
        console.print(
            f"[green]model[/] {card.id}  family={card.family}  context={card.context_size}  "
            f"max_images={card.max_images}  price per 1M tokens: in {prices.input_per_m} / out "
            f"{prices.output_per_m} {prices.currency}"
        )
        if served_model.compute is not None:
            compute = served_model.compute
            console.print(f"      computes on {compute.device} in {compute.dtype} ({compute.reason})", soft_wrap=True)
    if runs_open:
        console.print("[yellow]no API key exists: serving OPEN on loopback (any client, no billing)[/]")
    base = f"http://{settings.host}:{settings.port}"
    console.print(f"API {base}/v1   docs {base}/docs   playground {base}/playground   metrics {base}/metrics")
    configure_logs(log_level)
    uvicorn.run(web, host=settings.host, port=settings.port, log_level=log_level, access_log=False, log_config=None)


@app.command()
def estimate(
    images: Annotated[list[Path], typer.Argument(help="Image files", exists=True, dir_okay=False)],
    model: Annotated[str, typer.Option("--model", "-m", help="Model id from --config, or a checkpoint")],
    config: Annotated[Path | None, typer.Option("--config", "-c", help="loupe.toml (prices, limits)")] = None,
    detail: Annotated[str | None, typer.Option(help="low, high or auto")] = None,
    text: Annotated[str, typer.Option(help="The text sent with the images")] = "",
    max_tokens: Annotated[int | None, typer.Option(help="Completion allowance")] = None,
) -> None:
    """Count a request's tokens and cost from image headers, offline: no weights, no server."""
    from rich.table import Table

    from loupe.domain import Detail
    from loupe.offline import estimate_files
    from loupe.settings import load_settings, model_id_for

    try:
        chosen = None if detail is None else Detail(detail)
    except ValueError:
        console.print(f"[bold red]error:[/] unknown detail {detail!r}; use low, high or auto")
        raise typer.Exit(2) from None
    try:
        settings = load_settings(config, models=() if config else (model,))
        model_id = model if config else model_id_for(model)
        result = estimate_files(settings, model_id, images, detail=chosen, text=text, max_tokens=max_tokens)
    except LoupeError as exc:
        raise _fail(exc) from None
    table = Table(title=f"{result.model}: pre-flight estimate")
    for column in ("#", "file", "size", "detail", "applied", "processed at", "tokens"):
        table.add_column(column, justify="right" if column in {"#", "tokens"} else "left")
    for image, path in zip(result.images, images, strict=True):
        table.add_row(
            str(image.index), path.name, f"{image.width}x{image.height}",
            image.detail.value if image.detail else "-", image.detail_applied.value,
            f"{image.resized_width}x{image.resized_height}", str(image.tokens),
        )
    Console().print(table)
    currency = result.prices.currency
    typer.echo(
        f"prompt_tokens={result.prompt_tokens} image_tokens={result.image_tokens} "
        f"text_tokens={result.text_tokens} max_completion_tokens={result.max_completion_tokens}"
    )
    typer.echo(f"cost {currency}: prompt only {result.cost_min:f}, with the full completion {result.cost_max:f}")


@app.command("tiny-model")
def tiny_model(
    family: Annotated[str, typer.Argument(help="Model family, e.g. qwen2-vl or smolvlm")],
    out_dir: Annotated[Path, typer.Argument(help="Directory to write the checkpoint to")],
    hidden_size: Annotated[int | None, typer.Option(help="Text model hidden size")] = None,
    layers: Annotated[int | None, typer.Option(help="Text model layers")] = None,
) -> None:
    """Write a random-weight checkpoint of a real VLM architecture, built offline."""
    from loupe.testing.tiny import FAMILIES, build_tiny_checkpoint

    if family not in FAMILIES:
        console.print(f"[bold red]error:[/] unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
        raise typer.Exit(2)
    path = build_tiny_checkpoint(family, out_dir, hidden_size=hidden_size, layers=layers)
    console.print(f"wrote a tiny {family} checkpoint to {path}")
    typer.echo(str(path))


@app.command("real-size-model")
def real_size_model(
    name: Annotated[str, typer.Argument(help="Published model, e.g. SmolVLM-256M-Instruct or Qwen2-VL-2B-Instruct")],
    out_dir: Annotated[Path, typer.Argument(help="Directory to write the checkpoint to")],
) -> None:
    """Write a random-weight checkpoint with a published model's dimensions, built offline: it
    costs what the real model costs in memory and compute (for benchmarks and sizing a machine)."""
    from loupe.testing.tiny.real_size import REAL_SIZES, build_real_size_checkpoint

    if name not in REAL_SIZES:
        console.print(f"[bold red]error:[/] unknown model {name!r}; choose one of {', '.join(REAL_SIZES)}")
        raise typer.Exit(2)
    path = build_real_size_checkpoint(name, out_dir)
    console.print(f"wrote a random-weight {name} checkpoint to {path}")
    typer.echo(str(path))
