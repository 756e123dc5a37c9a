"""Keys and money around a chat run: who calls, may they, what is reserved, what is charged.

The billing facade is synchronous (short SQL transactions); every call here runs it on a worker
thread. Settlement after a client went away runs shielded from cancellation, so the charge of
what was generated is never lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio

from loupe.billing import Admission, ApiKey, Billing, UsageReport
from loupe.billing.facade import CHARGED_STATUSES
from loupe.domain import RateLimitInfo, Usage
from loupe.errors import AccessDenied, FailedToAuth, InvalidApiKey
from loupe.service.chat import ChatRun


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

    def __init__(self, billing: Billing) -> None:
        self._billing = billing

    @property
    def billing(self) -> Billing:
        return self._billing

    async def caller(self, secret: str | None) -> Caller:
        """The caller behind a bearer secret. While no live key exists at all the server runs
        open and any secret (clients like `openai` insist on sending one) is accepted."""
        return await anyio.to_thread.run_sync(self._resolve, secret)

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
        """Apply rate limits and reserve the run's maximum cost. Raises 403/429 errors."""
        if caller.key is None:
            return Ticket(admission=None)
        maximum = run.max_tokens * run.request.sampling.n
        admission = await anyio.to_thread.run_sync(
            self._billing.admit,
            caller.key,
            run.request.model,
            run.engine.card.prices,
            run.stats.prompt_tokens,
            maximum,
            run.id,
        )
        return Ticket(admission=admission)

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
