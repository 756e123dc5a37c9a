"""Keys and money around a chat run: who calls, may they, what is reserved, what is charged.

The billing facade is synchronous (short SQL transactions); every call here runs it on a worker
thread. Settlement after a client went away runs shielded from cancellation, so the charge of
what was generated is never lost.

A resolved caller is reused for `auth_cache_s` seconds without a query or a thread hop (about a
millisecond of every request's time to first token). That is safe for money: admission reserves
in a transaction that refuses a revoked key. What may lag by that long is a key's model list and
rate limits, and the end of running open after a key is made by another process; admin calls
resolve afresh, and a key change made through this process forgets what was kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio

from loupe.billing import Admission, ApiKey, Billing, UsageReport, cost_nanos
from loupe.billing.facade import CHARGED_STATUSES
from loupe.billing.ledger import Tags
from loupe.domain import RateLimitInfo, Usage
from loupe.errors import AccessDenied, FailedToAuth, InvalidApiKey
from loupe.service.chat import ChatRun


_KEPT_KEYS = 10_000  # live keys whose callers are kept at once


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: a live key, or nobody when the server runs open (loopback, no keys)."""

    key: ApiKey | None

    @property
    def is_admin(self) -> bool:
        return self.key is not None and self.key.is_admin


@dataclass(frozen=True, slots=True)
class Ticket:
    """An admitted run; `admission` is None when the server runs open (nothing is billed)."""

    admission: Admission | None

    @property
    def rate_limits(self) -> RateLimitInfo:
        return self.admission.rate_limits if self.admission else RateLimitInfo()


class Accounts:
    """Authentication, admission and settlement, off the event loop."""

    def __init__(self, billing: Billing, cache_s: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._billing = billing
        self._cache_s, self._clock = cache_s, clock
        self._open_until = 0.0  # the server runs open until then, as far as a query has shown
        self._keys: dict[str, tuple[float, Caller]] = {}  # secret: until when, caller

    @property
    def billing(self) -> Billing:
        return self._billing

    async def caller(self, secret: str | None, fresh: bool = False) -> Caller:
        """The caller behind a bearer secret. While no live key exists at all the server runs
        open and any secret (clients like `openai` insist on sending one) is accepted. Unless
        `fresh`, a caller resolved less than `cache_s` ago is reused."""
        now = self._clock()
        if not fresh:
            if now < self._open_until:
                return Caller(key=None)
            until, known = self._keys.get(secret or "", (0.0, None))
            if known is not None and now < until:
                return known
        caller = await anyio.to_thread.run_sync(self._resolve, secret)
        self._keep(secret, caller, now + self._cache_s)
        return caller

    def forget(self) -> None:
        """Drop every kept caller: a key was made, changed or revoked."""
        self._open_until = 0.0
        self._keys.clear()

    def _keep(self, secret: str | None, caller: Caller, until: float) -> None:
        if not self._cache_s:
            return
        if caller.key is None:
            self._open_until = until
            return
        if len(self._keys) >= _KEPT_KEYS:  # drop the lapsed; if none had, start over
            now = self._clock()
            self._keys = {s: kept for s, kept in self._keys.items() if kept[0] > now}
            if len(self._keys) >= _KEPT_KEYS:
                self._keys.clear()
        self._keys[secret or ""] = (until, caller)

    def _resolve(self, secret: str | None) -> Caller:
        try:
            return Caller(key=self._billing.authenticate(secret))
        except (InvalidApiKey, FailedToAuth):
            if self._billing.keys.any_active():
                raise
            return Caller(key=None)

    def check_model(self, caller: Caller, model: str) -> None:
        if caller.key is not None:
            self._billing.check_model(caller.key, model)

    def require_admin(self, caller: Caller) -> None:
        if not caller.is_admin:
            raise AccessDenied("this endpoint needs an admin API key")

    async def admit(self, caller: Caller, run: ChatRun) -> Ticket:
        """Apply rate limits and reserve the run's maximum cost. Raises 403/429 errors.

        A request without `max_tokens` is not refused for the cost of the whole context: its
        completion allowance (`run.max_tokens`) is lowered to what the key's balance can pay
        after the prompt, and generation stops there with `finish_reason: "length"`."""
        if caller.key is None:
            return Ticket(admission=None)
        admission = await anyio.to_thread.run_sync(self._admit, caller.key, run)
        return Ticket(admission=admission)

    def _admit(self, key: ApiKey, run: ChatRun) -> Admission:
        if run.request.sampling.max_tokens is None and key.balance_nanos is not None:  # unlimited stays so
            run.max_tokens = self._affordable(key.id, run)
        request = run.request
        return self._billing.admit(
            key,
            run.request.model,
            run.engine.card.prices,
            run.stats.prompt_tokens,
            run.max_tokens * run.request.sampling.n,
            run.id,
            Tags(request.user, request.safety_identifier, request.metadata),
        )

    def _affordable(self, key_id: str, run: ChatRun) -> int:
        """The most completion tokens per choice, up to `run.max_tokens` and at least 1, whose
        cost with the prompt fits the key's available balance (read now, reservations deducted)."""
        available = self._billing.keys.get(key_id).available_nanos
        prices, prompt, n = run.engine.card.prices, run.stats.prompt_tokens, run.request.sampling.n
        if available is None or cost_nanos(prices, prompt, run.max_tokens * n) <= available:
            return run.max_tokens
        low, high = 1, run.max_tokens  # cost grows with the allowance: bisect for the largest that fits
        while low < high:
            middle = (low + high + 1) // 2
            if cost_nanos(prices, prompt, middle * n) <= available:
                low = middle
            else:
                high = middle - 1
        return low

    async def settle(self, ticket: Ticket, status: int, usage: Usage) -> None:
        """Record the end of the run (charged on 200 and 499); durable when it returns."""
        if ticket.admission is None:
            return
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._billing.settle, ticket.admission, status, usage)

    async def cancel(self, ticket: Ticket, status: int) -> None:
        """A run that failed with a 4xx/5xx: release its reservation, charge nothing."""
        if ticket.admission is None:
            return
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._billing.cancel, ticket.admission, status)

    async def finish(self, ticket: Ticket, run: ChatRun, status: int) -> None:
        """End the run's ticket: charge what it generated (200, 499) or release it (errors)."""
        if status in CHARGED_STATUSES:
            await self.settle(ticket, status, run.usage())
        else:
            await self.cancel(ticket, status)

    async def usage(
        self, key_id: str | None, start: datetime, end: datetime, group_by: Any = None
    ) -> UsageReport:
        return await anyio.to_thread.run_sync(self._billing.usage, key_id, start, end, group_by)
