"""An upstream model put together: its checkpoint's processor (no weights), counter, card and replicas."""

from __future__ import annotations

import ssl
import time
from collections.abc import Sequence

import httpx
from httpx_aiohttp import AiohttpTransport

from loupe.domain import Prices
from loupe.engines.fingerprint import fingerprint
from loupe.engines.local.loader import read_checkpoint
from loupe.engines.upstream.client import UpstreamClient
from loupe.engines.upstream.encode import EncodedImages, ImageFormat
from loupe.engines.upstream.engine import UpstreamApi, UpstreamEngine
from loupe.engines.upstream.replicas import ReplicaPool
from loupe.engines.upstream.served import ReplicaReports
from loupe.errors import ConfigError
from loupe.models import TokenCounter
from loupe.models.card import checkpoint_counter, model_card

__all__ = ["load_upstream_model", "upstream_http"]


def load_upstream_model(
    model_id: str,
    checkpoint: str,
    upstream: Sequence[str],
    upstream_model: str,
    *,
    context_size: int | None,
    max_images: int,
    budget: int,
    health_interval_s: float = 5.0,
    connect_timeout_s: float = 2.0,
    read_timeout_s: float = 120.0,
    max_attempts: int = 3,
    max_failures: int = 2,
    max_connections: int = 512,
    learn_limits: bool = True,
    api: UpstreamApi = "auto",
    image_format: ImageFormat = "bmp",
    prices: Prices | None = None,
    owned_by: str = "loupe",
    family: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    encoded_cache_bytes: int = 0,
    max_videos: int = 0,
    api_key: str | None = None,
    ca_file: str | None = None,
) -> tuple[UpstreamEngine, TokenCounter]:
    """Read the checkpoint's processor and configs (no weights) and wire the replicas.

    `upstream` are base URLs ending in `/v1`; `upstream_model` is the model's name there.
    `read_timeout_s` bounds the wait for each piece of the answer, the first included (a long
    prefill under load). `encoded_cache_bytes` bounds the images kept encoded for later turns.
    `learn_limits` lets the replicas' stated context and image limits lower the card's (see
    `served`); `api` says which request fields beyond OpenAI's the replicas take;
    `image_format` how images travel (see `encode`); `api_key`, where set, goes to every replica
    as a bearer token; `ca_file` replaces the certificate authorities https replicas are checked
    against.
    Nothing is contacted here: `engine.start()` runs the first health probe. Raises ConfigError
    for a URL that is not http(s), ModelLoadError for the checkpoint.
    """
    urls = [_base_url(u) for u in upstream]
    found = read_checkpoint(checkpoint)
    counter = checkpoint_counter(found, budget)
    card = model_card(
        model_id,
        checkpoint,
        counter,
        created=int(time.time()),
        native_context=found.context_size,
        context_size=context_size,
        max_images=max_images,
        prices=prices or Prices(),
        owned_by=owned_by,
        family=family,
        vocab_size=len(found.processor.tokenizer),
        max_videos=max_videos,
        fingerprint=fingerprint(found.path, {"engine": "upstream", "model": upstream_model, "upstream": " ".join(urls)}),
    )
    http = upstream_http(connect_timeout_s, read_timeout_s, max_connections, transport, api_key=api_key, ca_file=ca_file)
    client = UpstreamClient(http, health_timeout_s=connect_timeout_s)
    reports = ReplicaReports(lambda url: client.served(url, upstream_model), upstream_model)
    pool = ReplicaPool(urls, reports.probe, health_interval_s=health_interval_s, max_failures=max_failures)
    engine = UpstreamEngine(
        card,
        found.processor,
        pool,
        client,
        upstream_model,
        reports=reports,
        configured_context=context_size,
        learn_limits=learn_limits,
        api=api,
        max_attempts=max_attempts,
        encode=EncodedImages(encoded_cache_bytes, image_format),
    )
    return engine, counter


def upstream_http(
    connect_timeout_s: float,
    read_timeout_s: float,
    max_connections: int,
    transport: httpx.AsyncBaseTransport | None = None,
    *,
    api_key: str | None = None,
    ca_file: str | None = None,
) -> httpx.AsyncClient:
    """The HTTP client for a model's replicas; `transport` replaces aiohttp's (tests). Raises
    ConfigError when `ca_file` cannot be read as PEM certificates."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    verify: ssl.SSLContext | bool = True  # httpx's default: certifi's authorities
    if ca_file is not None:
        try:
            verify = ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"upstream ca_file {ca_file!r} cannot be read as PEM certificates: {exc}") from None
    return httpx.AsyncClient(
        headers={"authorization": f"Bearer {api_key}"} if api_key else None,
        timeout=httpx.Timeout(connect=connect_timeout_s, read=read_timeout_s, write=read_timeout_s, pool=read_timeout_s),
        limits=limits,
        # aiohttp parses HTTP in C: relaying a streamed token costs a third less CPU than httpx's
        # own h11 transport (docs/internals.md, the gateway's relay).
        transport=transport or AiohttpTransport(verify=verify, limits=limits, trust_env=False),
        trust_env=False,  # a proxy from the environment must not sit between Loupe and its cluster
    )


def _base_url(url: str) -> str:
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(f"upstream URL {url!r} must be http(s)://host[:port]/v1")
    return url.rstrip("/")
