"""Upstream engines: OpenAI-compatible servers (vLLM, SGLang, transformers serve, another Loupe) behind Loupe."""

from loupe.engines.upstream.choices import UpstreamCounters
from loupe.engines.upstream.client import UpstreamClient
from loupe.engines.upstream.engine import UpstreamEngine, UpstreamPrompt
from loupe.engines.upstream.errors import UpstreamBadResponse, UpstreamTimeout, UpstreamUnavailable
from loupe.engines.upstream.loading import load_upstream_model
from loupe.engines.upstream.replicas import Replica, ReplicaPool

__all__ = [
    "Replica",
    "ReplicaPool",
    "UpstreamBadResponse",
    "UpstreamClient",
    "UpstreamCounters",
    "UpstreamEngine",
    "UpstreamPrompt",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "load_upstream_model",
]
