"""What the HTTP handlers are given: the services and the few limits that belong to HTTP."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from loupe.domain import Compute
from loupe.service.accounts import Accounts
from loupe.service.chat import ChatService
from loupe.service.metrics import Metrics


@dataclass(frozen=True, slots=True)
class AppState:
    chat: ChatService
    accounts: Accounts
    metrics: Metrics
    max_choices: int
    max_request_bytes: int
    cors_origins: tuple[str, ...] = ()  # web pages of other origins allowed to call the API
    body_memory_bytes: int = 0  # request bodies held at once (0: unbounded)
    compute: Mapping[str, Compute] = field(default_factory=dict)  # per embedded model
