"""The billing facade the HTTP layer calls: authenticate, check the model, admit, settle.

Synchronous on purpose: SQLAlchemy's sync engine with psycopg and sqlite3 is the well-trodden
path on both backends, and each call is a short transaction. Async code runs these methods in a
worker thread (`anyio.to_thread.run_sync`), which keeps database work off the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from loupe.billing.clock import Clock, utc_now
from loupe.billing.db import Database
from loupe.errors import AccessDenied, FailedToAuth, InvalidApiKey, InvalidRequest
from loupe.billing.keys import ApiKey, KeyStore
from loupe.billing.ledger import Ledger, Outcome, Reservation, Tags
from loupe.billing.money import MAX_NANOS, cost_nanos, format_money, from_nanos
from loupe.billing.processes import ProcessRegistry
from loupe.domain import Prices, RateLimitInfo
from loupe.billing.ratelimit import RateLimiter
from loupe.billing.throttle import Drawn, Limits, Throttle
from loupe.billing.usage import GroupBy, UsageReport, usage_report
from loupe.domain import Usage

# 200: done. 499: the client went away mid-stream; what was generated is charged.
CHARGED_STATUSES = frozenset({200, 499})
# Reservations older than this are released whoever holds them: no request lasts an hour.
DEFAULT_MAX_HOLD = timedelta(hours=1)

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Admission:
    """An admitted request: its reservation, its prices and its rate-limit numbers."""

    key_id: str
    model: str
    prices: Prices
    prompt_tokens: int
    max_completion_tokens: int
    reservation: Reservation
    drawn: Drawn
    tags: Tags = Tags()

    @property
    def request_id(self) -> str:
        return self.reservation.request_id

    @property
    def reserved(self) -> Decimal:
        return from_nanos(self.reservation.amount_nanos)

    @property
    def rate_limits(self) -> RateLimitInfo:
        return self.drawn.info


@dataclass(frozen=True, slots=True)
class Settlement:
    """What settling did. `recorded` False: the request id was already settled; nothing changed."""

    request_id: str
    status: int
    charged: bool
    cost_nanos: int
    recorded: bool

    @property
    def cost(self) -> Decimal:
        return from_nanos(self.cost_nanos)


class Billing:
    """Keys, balances, rate limits and the ledger behind one object."""

    def __init__(
        self,
        db: Database,
        limiter: RateLimiter,
        *,
        model_limits: Mapping[str, Limits] | None = None,
        clock: Clock = utc_now,
        processes: ProcessRegistry | None = None,
        max_hold: timedelta = DEFAULT_MAX_HOLD,
    ) -> None:
        """`processes`: this process's place among those sharing the database; without it, its
        reservations carry no owner and only `max_hold` releases them after a crash."""
        self.db = db
        self.keys = KeyStore(db, clock)
        self.ledger = Ledger(db, clock, owner=None if processes is None else processes.owner)
        self.processes = processes
        self._throttle = Throttle(limiter, model_limits)
        self._max_hold = max_hold

    def authenticate(self, secret: str | None) -> ApiKey:
        """The live key for a secret. Raises InvalidApiKey (none sent) or FailedToAuth."""
        if secret is None or not secret.strip():
            raise InvalidApiKey("no API key: send it as 'Authorization: Bearer <key>'")
        key = self.keys.find_by_secret(secret.strip())
        if key is None or key.revoked:
            raise FailedToAuth("the API key is unknown or revoked")
        return key

    def check_model(self, key: ApiKey, model: str) -> None:
        """Raises AccessDenied when the key may not use `model`."""
        if not key.allows(model):
            raise AccessDenied(f"this API key may not use the model {model!r}", param="model")

    def token_limit(self, key: ApiKey, model: str) -> int | None:
        """The tightest tokens-per-minute limit on `key`'s requests to `model`; None: none."""
        return self._throttle.token_limit(Limits(key.rpm, key.tpm), model)

    def admit(
        self,
        key: ApiKey,
        model: str,
        prices: Prices,
        prompt_tokens: int,
        max_completion_tokens: int,
        request_id: str,
        tags: Tags = Tags(),
    ) -> Admission:
        """Apply rate limits and reserve the request's maximum cost.

        `prompt_tokens` includes image tokens. Raises AccessDenied, InvalidRequest (the maximum
        cost, alone or with the key's other holds, is beyond `MAX_NANOS`), RateLimitExceeded,
        TokenLimitExceeded, NotEnoughBalance, FailedToAuth (revoked meanwhile) or
        DuplicateRequestId. Every admission must end in `settle` or `cancel`.
        """
        if prompt_tokens < 0 or max_completion_tokens < 0:
            raise ValueError("token counts must be >= 0")
        self.check_model(key, model)
        maximum = cost_nanos(prices, prompt_tokens, max_completion_tokens)
        if maximum > MAX_NANOS:
            raise InvalidRequest(
                f"this request may cost up to {format_money(maximum)}, more than {format_money(MAX_NANOS)}, "
                "the largest amount Loupe stores; lower max_tokens",
                param="max_tokens",
            )
        tokens = prompt_tokens + max_completion_tokens
        drawn = self._throttle.take(key.id, Limits(key.rpm, key.tpm), model, tokens)
        try:
            reservation = self.ledger.reserve(key.id, model, request_id, maximum)
        except BaseException:
            self._throttle.give_back(drawn, tokens)  # the request still counts; its tokens do not
            raise
        return Admission(key.id, model, prices, prompt_tokens, max_completion_tokens, reservation, drawn, tags)

    def settle(self, admission: Admission, status: int, usage: Usage) -> Settlement:
        """Record how the request ended; charge it if `status` is 200 or 499, else charge nothing.

        Exactly once per request id, and durable when it returns: commit before the response's
        last byte. Unused tokens go back to the token-per-minute limits.
        """
        charged = status in CHARGED_STATUSES
        cost = cost_nanos(admission.prices, usage.prompt_tokens, usage.completion_tokens) if charged else 0
        cost = min(cost, MAX_NANOS)  # only a count above the admitted one could pass it: charge what fits
        outcome = Outcome(
            status, charged, usage.text_tokens, usage.image_tokens, usage.completion_tokens, cost, usage.video_tokens
        )
        recorded = self.ledger.settle(admission.reservation, outcome, admission.tags)
        if recorded:
            drawn_tokens = admission.prompt_tokens + admission.max_completion_tokens
            self._throttle.give_back(admission.drawn, drawn_tokens - usage.total_tokens)
        return Settlement(admission.request_id, status, charged, cost, recorded)

    def cancel(self, admission: Admission, status: int = 500) -> Settlement:
        """End a request that failed (4xx/5xx) before producing anything: release, charge nothing."""
        if status in CHARGED_STATUSES:
            raise ValueError(f"status {status} is charged; use settle")
        return self.settle(admission, status, Usage(prompt_tokens=0, completion_tokens=0, image_tokens=0))

    def sweep(self) -> int:
        """Release what no live process holds; returns how many reservations were released.

        Processes found dead lose their rows, then the reservations of unregistered owners, and
        any older than `max_hold`, are released. Run at start-up (a process on this machine that
        exited is seen at once) and on every heartbeat.
        """
        for dead in [] if self.processes is None else self.processes.remove_dead():
            who = dead.identity
            _log.warning("serving process %s (pid %d on %s) %s", dead.id, who.pid, who.host, dead.reason)
        released = self.ledger.release_abandoned(self._max_hold)
        if released:
            _log.warning(
                "released %d reservations that no live process holds, uncharged: %s",
                len(released), ", ".join(r.request_id for r in released),
            )
        return len(released)

    def register(self) -> None:
        """Enter this serving process in the registry, before it admits a request."""
        self._registry().register()

    def heartbeat(self) -> None:
        """Show this process alive and sweep for the dead: every `heartbeat_s`."""
        self._registry().beat()
        self.sweep()

    def retire(self) -> None:
        """Leave the registry at shutdown; what this process still holds is released."""
        self._registry().retire()
        self.sweep()

    def _registry(self) -> ProcessRegistry:
        if self.processes is None:
            raise RuntimeError("this Billing was made without a process registry")
        return self.processes

    def usage(
        self, key_id: str | None, start: datetime, end: datetime, group_by: GroupBy | None = None
    ) -> UsageReport:
        return usage_report(self.db, key_id, start, end, group_by)
