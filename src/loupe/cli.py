"""The `loupe` command: serve, tiny-model."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from loupe.errors import LoupeError

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Loupe: VLMs behind the OpenAI API.")
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
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
) -> None:
    """Load the models and serve the OpenAI-compatible API."""
    import uvicorn

    from loupe.compose import build_app, load_models
    from loupe.settings import load_settings

    overrides: dict[str, Any] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if allow_media_host:
        overrides["fetch.allow_media_hosts"] = tuple(allow_media_host)
    if device is not None:
        overrides["engine.device"] = device
    try:
        settings = load_settings(config, models=tuple(model or ()), overrides=overrides)
        with console.status("loading models") as status:
            served = load_models(settings, lambda m: status.update(f"loading {m.id} from {m.checkpoint}"))
        web = build_app(settings, served)
    except LoupeError as exc:
        raise _fail(exc) from None
    for model in served.values():
        card = model.engine.card
        console.print(
            f"[green]model[/] {card.id}  family={card.family}  context={card.context_size}  "
            f"max_images={card.max_images}"
        )
    base = f"http://{settings.host}:{settings.port}"
    console.print(f"API {base}/v1   docs {base}/docs")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    uvicorn.run(web, host=settings.host, port=settings.port, log_level=log_level)


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
