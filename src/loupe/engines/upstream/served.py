"""What each replica says of the model it serves (its `/models` entry), and the card that follows.

The health probe reads `GET {base}/models` on every replica; the model's entry there states the
server's own limits: vLLM and SGLang give `max_model_len` (the context the server was started
with, which may be far below the checkpoint's), another Loupe `context_size` and `max_images`.
Loupe refuses what the upstream would refuse, before sending anything, from these figures: the
smallest over the replicas, since any of them may get a request. A configured `context_size`
can only lower them; `learn_limits = false` ignores them.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from loupe.domain import ModelCard

__all__ = ["ReplicaReports", "ServedReport", "learned_card", "served_report"]

_log = logging.getLogger(__name__)

_CONTEXT_FIELDS = ("max_model_len", "context_size", "context_length")


@dataclass(frozen=True, slots=True)
class ServedReport:
    """One replica's `/models` entry for the model, reduced to what Loupe uses.

    `listed` is False when the replica answered but does not list the model (its figures are
    then unknown). `vllm` says the server is vLLM, which takes a few request fields beyond
    OpenAI's (see `request.vllm_fields`).
    """

    listed: bool = True
    context_size: int | None = None
    max_images: int | None = None
    vllm: bool = False


def served_report(body: Any, model: str) -> ServedReport:
    """The report for `model` in a `/models` body; an odd body is a replica that lists nothing."""
    data = body.get("data") if isinstance(body, dict) else None
    entries = [e for e in data if isinstance(e, dict)] if isinstance(data, list) else []
    entry = next((e for e in entries if e.get("id") == model), None)
    if entry is None:
        return ServedReport(listed=False)
    context = next((v for v in map(entry.get, _CONTEXT_FIELDS) if _is_count(v, least=1)), None)
    images = entry.get("max_images")
    return ServedReport(
        context_size=context,
        max_images=images if _is_count(images, least=0) else None,
        vllm=entry.get("owned_by") == "vllm",
    )


def _is_count(value: object, *, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


Fetch = Callable[[str], Awaitable[ServedReport | None]]


class ReplicaReports:
    """The latest report of each replica; `probe` is the replica pool's health check."""

    def __init__(self, fetch: Fetch, model: str) -> None:
        self._fetch = fetch
        self._model = model
        self._reports: dict[str, ServedReport] = {}
        self.revision = 0  # counts the changes of any report: what was learned from them is stale

    async def probe(self, base_url: str) -> bool:
        """Healthy when the replica answered `/models`; its report is kept (and changes logged)."""
        report = await self._fetch(base_url)
        if report is None:
            return False
        before = self._reports.get(base_url)
        self._reports[base_url] = report
        if report != before:
            self.revision += 1
            self._log_change(base_url, report)
        return True

    def get(self, base_url: str) -> ServedReport | None:
        return self._reports.get(base_url)

    def context_size(self) -> int | None:
        return _least(r.context_size for r in self._reports.values())

    def max_images(self) -> int | None:
        return _least(r.max_images for r in self._reports.values())

    def _log_change(self, base_url: str, report: ServedReport) -> None:
        if not report.listed:
            _log.warning(
                "upstream replica does not list the model; check upstream_model",
                extra={"upstream": base_url, "upstream_model": self._model},
            )
            return
        _log.info(
            "upstream replica limits",
            extra={"upstream": base_url, "context_size": report.context_size, "max_images": report.max_images},
        )


def _least(values: Iterable[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return min(known) if known else None


def learned_card(card: ModelCard, configured_context: int | None, reports: ReplicaReports) -> ModelCard:
    """`card` (the checkpoint's context, lowered by the configuration) under the replicas' figures.

    A reported context replaces the checkpoint's, which an upstream may exceed (rope scaling)
    or, more often, fall short of; the configured one still caps it. Reported image limits
    lower the configured one.
    """
    context, images = reports.context_size(), reports.max_images()
    if context is not None and configured_context is not None:
        context = min(context, configured_context)
    return dataclasses.replace(
        card,
        context_size=card.context_size if context is None else context,
        max_images=card.max_images if images is None else min(images, card.max_images),
    )
