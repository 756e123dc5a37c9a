"""The composition root's billing half: the database and the rate limiter, from settings.

Kept apart from compose.py so that `loupe keys`, `loupe usage` and `loupe doctor` open the
database without importing the engines (torch and transformers take seconds to import).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import redis
from sqlalchemy.engine import make_url

from loupe.billing import Billing, InProcessRateLimiter, Limits, RateLimiter, RedisRateLimiter, normalize_url
from loupe.billing import open_database, upgrade
from loupe.billing.heartbeat import Heartbeat
from loupe.billing.liveness import this_process
from loupe.billing.processes import ProcessRegistry
from loupe.errors import ConfigError
from loupe.settings import Settings


def sqlite_file(db: str) -> Path | None:
    """The file of a SQLite database URL (or plain path), absolute; None for other databases."""
    url = make_url(normalize_url(db))
    if url.get_backend_name() != "sqlite" or url.database in {None, "", ":memory:"}:
        return None
    return Path(url.database).absolute()


def describe_database(db: str) -> str:
    """The database as shown to people: a SQLite file's absolute path, or the URL without its password."""
    path = sqlite_file(db)
    if path is not None:
        return f"SQLite {path}"
    return make_url(normalize_url(db)).render_as_string(hide_password=True)


def open_billing(settings: Settings) -> Billing:
    """The database (migrated; what dead processes held released) and the rate limiter. A SQLite
    file's folder is made if missing (the default one, in Loupe's data directory, at first use)."""
    path = sqlite_file(settings.db)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    db = open_database(settings.db)
    upgrade(db)
    limiter: RateLimiter = InProcessRateLimiter()
    if settings.redis is not None:
        limiter = RedisRateLimiter(redis.Redis.from_url(settings.redis))
    limits = {m.id: Limits(m.rpm, m.tpm) for m in settings.models if m.rpm or m.tpm}
    timing = settings.billing
    processes = ProcessRegistry(db, this_process(), dead_after_s=timing.dead_after_s)
    billing = Billing(
        db, limiter, model_limits=limits, processes=processes, max_hold=timedelta(seconds=timing.max_hold_s)
    )
    billing.sweep()
    return billing


class ServingProcess:
    """This process in the billing database: registered and beating from `start` (the app's
    start) until `stop` retires it, so an app built and never run leaves no thread behind."""

    def __init__(self, settings: Settings, billing: Billing) -> None:
        self._billing = billing
        self._heartbeat = Heartbeat(billing.heartbeat, settings.billing.heartbeat_s)
        self._running = False

    async def start(self) -> None:
        self._billing.register()
        self._heartbeat.start()
        self._running = True

    async def stop(self) -> None:
        if self._running:
            self._running = False
            self._heartbeat.stop()
            self._billing.retire()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(settings: Settings, billing: Billing) -> bool:
    """True when the server runs open. Refuses (ConfigError) to listen beyond loopback without keys."""
    if billing.keys.any_active():
        return False
    if not is_loopback(settings.host):
        raise ConfigError(
            f"refusing to listen on {settings.host} without API keys: anyone could use the models. "
            "Create one first with `loupe keys create --name admin --admin`, or listen on 127.0.0.1."
        )
    return True
