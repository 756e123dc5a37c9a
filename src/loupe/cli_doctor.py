"""`loupe doctor`: what `loupe serve` would use, checked without loading weights or writing anything."""

from __future__ import annotations

import json as json_module
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from loupe import __version__
from loupe.cli_output import ConfigOption, DbOption, DeviceOption, HostOption, ModelOption, PortOption, fail, print_json
from loupe.errors import LoupeError
from loupe.settings import ModelSettings, Settings


@dataclass
class Report:
    """What the server would use; `problems` are what would stop it or a request."""

    version: str
    config: str | None
    database: str
    keys: dict[str, int] | None
    access: str
    listen: str
    device: str
    dtype: str
    cpu: str
    models: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def doctor(
    model: ModelOption = None,
    config: ConfigOption = None,
    host: HostOption = None,
    port: PortOption = None,
    device: DeviceOption = None,
    db: DbOption = None,
    json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Say what `loupe serve` would use with these options: database, keys, models, device, dtype.

    Reads the configuration, the database and the checkpoints' config files; loads no weights,
    downloads nothing and writes nothing. Exits 1 when something would stop the server."""
    from loupe.settings import load_settings

    overrides = {"db": db, "host": host, "port": port, "engine.device": device}
    try:
        settings = load_settings(config, models=tuple(model or ()), overrides=overrides)
    except LoupeError as exc:
        fail(exc.message)
    report = examine(settings, config)
    if json:
        print_json(asdict(report))
    else:
        _print(report)
    if report.problems:
        raise typer.Exit(1)


def examine(settings: Settings, config: Path | None) -> Report:
    from loupe.compose_billing import describe_database, is_loopback

    device, dtype, cpu = _compute(settings)
    keys, db_problem = _keys(settings.db)
    problems = [db_problem] if db_problem else []
    active = keys["active"] if keys else 0
    if active:
        access = f"API keys required ({active} active key{'s' if active != 1 else ''})"
    elif is_loopback(settings.host):
        access = "OPEN: no API key exists, so any local client may call it and nothing is billed"
    else:
        access = "refused: no API key exists and the address is not loopback"
        problems.append(f"the server would refuse to listen on {settings.host} without a key: run `loupe keys create`")
    report = Report(
        version=f"loupe {__version__}, Python {platform.python_version()}",
        config=str(config) if config else None,
        database=describe_database(settings.db),
        keys=keys,
        access=access,
        listen=f"http://{settings.host}:{settings.port}",
        device=device,
        dtype=dtype,
        cpu=cpu,
        problems=problems,
    )
    for model in settings.models:
        found, problem = _checkpoint(model)
        report.models.append({"id": model.id, "checkpoint": model.checkpoint, "engine": model.engine, "found": found})
        if problem:
            report.problems.append(f"model {model.id}: {problem}")
    return report


def _compute(settings: Settings) -> tuple[str, str, str]:
    """The device and dtype the embedded engine would pick, and the CPU's vector extensions.
    Torch is imported only where it could find a GPU: a CPU-only install is answered from
    torch's version file and the CPU's flags."""
    from loupe.engines.local.placement import cpu_dtype, cpu_extensions, gpu_build

    requested = settings.engine.device
    cpu = ", ".join([platform.machine(), *cpu_extensions()])
    if requested == "cpu" or gpu_build() is False:
        if requested == "cuda":
            return "unavailable: device 'cuda' was requested but the installed torch is a CPU build", "-", cpu
        return f"cpu (asked: {requested})", cpu_dtype(settings.engine.dtype), cpu
    return _compute_with_torch(settings, cpu)


def _compute_with_torch(settings: Settings, cpu: str) -> tuple[str, str, str]:
    import torch

    from loupe.engines.local.loader import pick_device
    from loupe.engines.local.precision import bf16_units, choose_precision

    try:
        target = pick_device(settings.engine.device)
    except LoupeError as exc:
        return f"unavailable: {exc.message}", "-", cpu
    dtype = choose_precision(settings.engine.dtype, target, None, bf16_units() if target.type == "cpu" else None).name
    where = f"{target.type} (asked: {settings.engine.device})"
    if target.type == "cuda":
        where += f", {torch.cuda.get_device_name(0)}"
    return where, dtype, cpu


def _keys(db: str) -> tuple[dict[str, int] | None, str | None]:
    """Counts of keys, read without creating or migrating the database."""
    from sqlalchemy.exc import SQLAlchemyError

    from loupe.billing import KeyStore, open_database
    from loupe.compose_billing import sqlite_file

    path = sqlite_file(db)
    if path is not None and not path.exists():
        return {"total": 0, "active": 0, "admin": 0}, None
    try:
        database = open_database(db)
        try:
            found = KeyStore(database).list_keys()
        finally:
            database.dispose()
    except (LoupeError, SQLAlchemyError) as exc:
        reason = exc.message if isinstance(exc, LoupeError) else type(exc).__name__
        return None, f"the database cannot be read ({reason}); try `loupe db upgrade`"
    live = [k for k in found if not k.revoked]
    return {"total": len(found), "active": len(live), "admin": sum(k.is_admin for k in live)}, None


def _checkpoint(model: ModelSettings) -> tuple[str, str | None]:
    """Where the checkpoint is, and what is wrong with it, without reading weights or the network."""
    from huggingface_hub import try_to_load_from_cache

    from loupe.models import MODEL_TYPES

    if model.engine == "upstream":
        return f"upstream {', '.join(model.upstream)} (not contacted)", None
    path = Path(model.checkpoint).expanduser()
    if path.is_dir():
        config = path / "config.json"
    elif path.exists() or model.checkpoint.startswith((".", "/", "~")):
        return "missing", f"{model.checkpoint} is not a directory of a saved model"
    else:
        cached = try_to_load_from_cache(model.checkpoint, "config.json")
        if not isinstance(cached, str):
            return "not in the Hugging Face cache: `loupe serve` downloads it (needs the hub)", None
        config = Path(cached)
    try:
        model_type = str(json_module.loads(config.read_text()).get("model_type"))
    except (OSError, ValueError) as exc:
        return str(config.parent), f"cannot read {config}: {exc}"
    if model_type not in MODEL_TYPES:
        return str(config.parent), f"model type {model_type!r} is not supported"
    return f"{config.parent} ({MODEL_TYPES[model_type]})", None


def _print(report: Report) -> None:
    keys = report.keys
    counts = "unreadable" if keys is None else f"keys: {keys['total']}, {keys['active']} active, {keys['admin']} admin"
    lines = [
        ("version", report.version),
        ("config", report.config or "none (defaults and options)"),
        ("database", f"{report.database} ({counts})"),
        ("access", report.access),
        ("listen", report.listen),
        ("device", f"{report.device}, dtype {report.dtype}"),
        ("cpu", report.cpu),
    ]
    for model in report.models:
        lines.append(("model", f"{model['id']}: {model['found']}"))
    for problem in report.problems:
        lines.append(("problem", problem))
    for label, value in lines:
        typer.echo(f"{label:<9} {value}")
