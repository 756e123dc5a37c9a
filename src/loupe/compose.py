"""The composition root: settings in, loaded engines and a ready HTTP app out."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import redis
from fastapi import FastAPI

from loupe.api.app import create_app
from loupe.api.state import AppState
from loupe.billing import Billing, InProcessRateLimiter, Limits, RateLimiter, RedisRateLimiter, open_database, upgrade
from loupe.domain import Compute, Prices
from loupe.engines.local.engine import BatchingLimits, LocalEngine
from loupe.engines.local.loader import load_model
from loupe.engines.protocol import Engine
from loupe.engines.upstream import UpstreamEngine, load_upstream_model
from loupe.lru import ByteLRU
from loupe.media import DecodedCache, ImageFetcher, MediaIntake, SystemResolver, network_transport
from loupe.models import TokenCounter
from loupe.models.card import checkpoint_counter, model_card
from loupe.errors import ConfigError
from loupe.service.accounts import Accounts
from loupe.service.chat import ChatService
from loupe.service.metrics import Metrics
from loupe.service.images import ImageService, fetch_limits, limits_for
from loupe.settings import ModelSettings, Settings


MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ServedModel:
    """A loaded model: its engine and the counter that plans its images."""

    engine: Engine
    counter: TokenCounter
    compute: Compute | None = None  # an embedded model's device and dtype


def load_local_model(model: ModelSettings, settings: Settings, metrics: Metrics) -> ServedModel:
    """Load one model's weights (this is where start-up time goes) and wrap it as an engine."""
    loaded = load_model(model.checkpoint, device=settings.engine.device, dtype=settings.engine.dtype)
    counter = checkpoint_counter(loaded.checkpoint, model.images.auto_detail_token_budget)
    card = model_card(
        model.id,
        model.checkpoint,
        counter,
        created=int(time.time()),
        native_context=loaded.checkpoint.context_size,
        context_size=model.context_size,
        max_images=model.images.max_images,
        prices=prices_of(model, settings),
        owned_by=model.owned_by,
        family=model.family,
    )
    engine = settings.engine
    limits = BatchingLimits(
        max_running=engine.max_running,
        prefill_budget=engine.prefill_budget,
        vision_cache_bytes=engine.vision_cache_mb * MiB,
        prefix_cache_bytes=engine.prefix_cache_mb * MiB,
    )
    batch_sizes = metrics.batch_size.labels(model.id)
    local = LocalEngine(card, loaded, max_queue=engine.max_queue, limits=limits, observe_batch=batch_sizes.observe)
    return ServedModel(local, counter, local.compute)


def prices_of(model: ModelSettings, settings: Settings) -> Prices:
    return Prices(model.input_price_per_m, model.output_price_per_m, settings.currency)


def load_upstream(model: ModelSettings, settings: Settings, metrics: Metrics) -> ServedModel:
    """A model served by OpenAI-compatible upstream replicas; its checkpoint is read without weights."""
    options = model.upstream_options
    engine, counter = load_upstream_model(
        model.id,
        model.checkpoint,
        model.upstream,
        model.upstream_model or model.id,
        context_size=model.context_size,
        max_images=model.images.max_images,
        budget=model.images.auto_detail_token_budget,
        health_interval_s=options.health_interval_s,
        connect_timeout_s=options.connect_timeout_s,
        read_timeout_s=options.read_timeout_s,
        max_attempts=options.max_attempts,
        max_failures=options.max_failures,
        prices=prices_of(model, settings),
        owned_by=model.owned_by,
        family=model.family,
        encoded_cache_bytes=settings.engine.image_cache_mb * MiB,
    )
    return ServedModel(engine, counter)


def load_models(
    settings: Settings, metrics: Metrics, on_model: Callable[[ModelSettings], None] | None = None
) -> dict[str, ServedModel]:
    served: dict[str, ServedModel] = {}
    for model in settings.models:
        if on_model is not None:
            on_model(model)
        load = load_upstream if model.engine == "upstream" else load_local_model
        served[model.id] = load(model, settings, metrics)
    return served


def image_service(settings: Settings, served: Mapping[str, ServedModel], metrics: Metrics) -> ImageService:
    fetch = settings.fetch
    fetcher = ImageFetcher(fetch_limits(fetch), transport=network_transport(), resolver=SystemResolver())
    decoded: DecodedCache = ByteLRU(settings.engine.image_cache_mb * MiB)
    intakes = {m.id: MediaIntake(limits_for(m, fetch), fetcher=fetcher, cache=decoded) for m in settings.models}
    counters = {model_id: s.counter for model_id, s in served.items()}
    return ImageService(intakes, counters, fetcher, metrics)


def build_app(settings: Settings, served: Mapping[str, ServedModel], billing: Billing, metrics: Metrics) -> FastAPI:
    engines = {model_id: s.engine for model_id, s in served.items()}
    chat = ChatService(engines, image_service(settings, served, metrics))
    metrics.add_gauge(
        "loupe_queue_depth",
        "Requests queued or running, per model",
        ["model"],
        lambda: {(model,): float(depth) for model, depth in chat.queue_depths().items()},
    )
    locals_ = {m: s.engine for m, s in served.items() if isinstance(s.engine, LocalEngine)}
    metrics.add_counter(
        "loupe_vision_cache_lookups",
        "Vision-cache lookups of the embedded engine, by result",
        ["model", "result"],
        lambda: {
            (m, result): float(e.cache_stats[f"vision_{result}"]) for m, e in locals_.items() for result in ("hits", "misses")
        },
    )
    upstreams = {m: s.engine for m, s in served.items() if isinstance(s.engine, UpstreamEngine)}
    metrics.add_gauge(
        "loupe_upstream_replica_up",
        "1 while an upstream replica is in rotation, 0 while it is taken out",
        ["model", "replica"],
        lambda: {(m, r.base_url): float(not r.ejected) for m, e in upstreams.items() for r in e.pool.replicas},
    )
    metrics.add_gauge(
        "loupe_upstream_usage_mismatches",
        "Completions whose upstream-reported prompt usage differed from Loupe's count",
        ["model"],
        lambda: {(m,): float(e.usage_mismatches) for m, e in upstreams.items()},
    )
    state = AppState(
        chat=chat,
        accounts=Accounts(billing, settings.auth_cache_s),
        metrics=metrics,
        max_choices=settings.engine.max_choices,
        max_request_bytes=settings.max_request_bytes,
        compute={m: s.compute for m, s in served.items() if s.compute is not None},
    )
    return create_app(state, list(engines.values()), closers=[chat.aclose, _async(billing.db.dispose)])


def _async(close: Callable[[], None]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        close()

    return run



def open_billing(settings: Settings) -> Billing:
    """The database (migrated, stale reservations released) and the rate limiter."""
    db = open_database(settings.db)
    upgrade(db)
    limiter: RateLimiter = InProcessRateLimiter()
    if settings.redis is not None:
        limiter = RedisRateLimiter(redis.Redis.from_url(settings.redis))
    limits = {m.id: Limits(m.rpm, m.tpm) for m in settings.models if m.rpm or m.tpm}
    billing = Billing(db, limiter, model_limits=limits)
    billing.release_stale()
    return billing


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
