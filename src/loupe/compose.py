"""The composition root: settings in, loaded engines and a ready HTTP app out."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from fastapi import FastAPI

from loupe.api.app import create_app
from loupe.api.connection import ConnectionLimits
from loupe.api.state import AppState
from loupe.billing import Billing
from loupe.compose_billing import ServingProcess
from loupe.domain import Compute, Prices
from loupe.engines.local.cpu_heap import give_back_freed_memory
from loupe.engines.local.engine import BatchingLimits, LocalEngine
from loupe.engines.local.identity import local_fingerprint
from loupe.engines.local.loader import VideoFiles, load_model, read_video_files
from loupe.engines.protocol import Engine
from loupe.engines.upstream import UpstreamEngine, load_upstream_model
from loupe.lru import ByteLRU
from loupe.media import DecodedCache, ImageFetcher, MediaIntake, SystemResolver, network_transport
from loupe.media.video_intake import SampledCache, VideoIntake
from loupe.models import MODEL_TYPES, TokenCounter
from loupe.models.video_catalog import VideoCounter, video_counter_for
from loupe.models.card import checkpoint_counter, model_card
from loupe.service.accounts import Accounts
from loupe.service.chat import ChatService
from loupe.service.budget import MemoryBudget
from loupe.service.metrics import Metrics
from loupe.service.images import ImageService, fetch_limits, limits_for
from loupe.service.videos import VideoModel, VideoService, video_limits_for
from loupe.settings import ModelSettings, Settings


MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ServedModel:
    """A loaded model: its engine and the counters that plan its images and videos (None:
    its family takes no video)."""

    engine: Engine
    counter: TokenCounter
    video: VideoCounter | None = None
    compute: Compute | None = None  # an embedded model's device and dtype


def load_local_model(model: ModelSettings, settings: Settings, metrics: Metrics) -> ServedModel:
    """Load one model's weights (this is where start-up time goes) and wrap it as an engine."""
    loaded = load_model(model.checkpoint, device=settings.engine.device, dtype=settings.engine.dtype)
    counter = checkpoint_counter(loaded.checkpoint, model.images.auto_detail_token_budget)
    video = video_counter(loaded.checkpoint.video_files, model)
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
        fingerprint=local_fingerprint(loaded),
        vocab_size=len(loaded.processor.tokenizer),
        max_videos=model.videos.max_videos if video else 0,
    )
    engine = settings.engine
    limits = BatchingLimits(
        max_running=engine.max_running,
        prefill_budget=engine.prefill_budget,
        vision_cache_bytes=engine.vision_cache_mb * MiB,
        prefix_cache_bytes=engine.prefix_cache_mb * MiB,
        stream_buffer=engine.stream_buffer_tokens,
        stall_timeout_s=engine.stream_stall_timeout_s,
    )
    batch_sizes = metrics.batch_size.labels(model.id)
    local = LocalEngine(card, loaded, max_queue=engine.max_queue, limits=limits, observe_batch=batch_sizes.observe)
    return ServedModel(local, counter, video, local.compute)


def prices_of(model: ModelSettings, settings: Settings) -> Prices:
    return Prices(model.input_price_per_m, model.output_price_per_m, settings.currency)


def load_upstream(model: ModelSettings, settings: Settings, metrics: Metrics) -> ServedModel:
    """A model served by OpenAI-compatible upstream replicas; its checkpoint is read without weights."""
    options = model.upstream_options
    video = video_counter(read_video_files(model.checkpoint), model)
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
        learn_limits=options.learn_limits,
        api=options.api,
        image_format=options.image_format,
        prices=prices_of(model, settings),
        owned_by=model.owned_by,
        family=model.family,
        encoded_cache_bytes=settings.engine.image_cache_mb * MiB,
        max_videos=model.videos.max_videos if video else 0,
        api_key=options.api_key.get_secret_value() if options.api_key is not None else None,
        ca_file=options.ca_file,
    )
    return ServedModel(engine, counter, video)


def video_counter(files: VideoFiles, model: ModelSettings) -> VideoCounter | None:
    """The model's video counter: its family's rules, its checkpoint's settings, its limits."""
    family = MODEL_TYPES.get(files.model_type)
    if family is None:
        return None
    return video_counter_for(
        family,
        files.video_config,
        budget=model.images.auto_detail_token_budget,
        max_frames=model.videos.max_frames,
        processor_config=files.processor_config,
    )


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


def image_service(
    settings: Settings, served: Mapping[str, ServedModel], metrics: Metrics, fetcher: ImageFetcher, decoded: DecodedCache
) -> ImageService:
    intakes = {m.id: MediaIntake(limits_for(m, settings.fetch), fetcher=fetcher, cache=decoded) for m in settings.models}
    counters = {model_id: s.counter for model_id, s in served.items()}
    return ImageService(intakes, counters, fetcher, metrics)


def video_service(
    settings: Settings, served: Mapping[str, ServedModel], fetcher: ImageFetcher, sampled: SampledCache
) -> VideoService:
    """Each model's video intake (the images' fetcher, one cache of sampled frames) and limits."""
    models = {
        m.id: VideoModel(
            VideoIntake(video_limits_for(m), fetcher=fetcher, cache=sampled),
            served[m.id].video,
            max_videos=m.videos.max_videos,
            max_video_tokens=m.videos.max_video_tokens,
        )
        for m in settings.models
    }
    return VideoService(models)


def build_app(settings: Settings, served: Mapping[str, ServedModel], billing: Billing, metrics: Metrics) -> FastAPI:
    engines = {model_id: s.engine for model_id, s in served.items()}
    fetcher = ImageFetcher(fetch_limits(settings.fetch), transport=network_transport(), resolver=SystemResolver())
    decoded: DecodedCache = ByteLRU(settings.engine.image_cache_mb * MiB)
    sampled: SampledCache = ByteLRU(settings.engine.video_cache_mb * MiB)
    chat = ChatService(
        engines,
        image_service(settings, served, metrics, fetcher, decoded),
        MemoryBudget(settings.engine.image_memory_mb * MiB),
        video_service(settings, served, fetcher, sampled),
    )
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
    metrics.add_gauge(
        "loupe_cache_bytes",
        "Bytes held on purpose for later requests, by cache (each bounded by its [engine] *_cache_mb)",
        ["cache"],
        lambda: {
            ("vision",): float(sum(e.cache_stats["vision_bytes"] for e in locals_.values())),
            ("prefix",): float(sum(e.cache_stats["prefix_bytes"] for e in locals_.values())),
            ("images",): float(decoded.size),
            ("video_frames",): float(sampled.size),
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
        cors_origins=settings.cors_origins,
        body_memory_bytes=settings.server.body_memory_mb * MiB,
        compute={m: s.compute for m, s in served.items() if s.compute is not None},
    )
    process = ServingProcess(settings, billing)
    closers = [chat.aclose, process.stop, _async(billing.db.dispose)]
    # What a burst's parsing, images and activations freed goes back to the system once it is over.
    return create_app(
        state, list(engines.values()), starters=[process.start], closers=closers, on_idle=give_back_freed_memory
    )


def _async(close: Callable[[], None]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        close()

    return run


def connection_limits(settings: Settings) -> ConnectionLimits:
    """The HTTP server's deadlines and caps, from `[server]`."""
    return ConnectionLimits(**settings.server.model_dump(exclude={"body_memory_mb"}))
