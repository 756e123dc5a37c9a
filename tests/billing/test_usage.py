from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from loupe.billing import Billing, Database, InProcessRateLimiter, cost_nanos, prices_of
from loupe.domain import Prices, Usage

from .support import FakeClock, usage

CHEAP, DEAR = prices_of("0.1", "0.2"), prices_of("3", "15")


def _run(billing: Billing, key_id: str, model: str, prices: Prices, status: int, n: int) -> None:
    key = billing.keys.get(key_id)
    admission = billing.admit(key, model, prices, 1000, 100, f"{model}-{status}-{n}-{key_id}")
    billing.settle(admission, status, usage(1000, 100, images=400))


def _ledger(database: Database) -> tuple[Billing, FakeClock, str, str]:
    clock = FakeClock(datetime(2026, 3, 1, 23, 0, tzinfo=UTC))
    billing = Billing(database, InProcessRateLimiter(), clock=clock)
    alice = billing.keys.create("alice", balance="10").key.id
    bob = billing.keys.create("bob").key.id
    _run(billing, alice, "cheap", CHEAP, 200, 1)
    _run(billing, alice, "dear", DEAR, 200, 1)
    _run(billing, alice, "dear", DEAR, 500, 1)  # not charged, not counted
    clock.advance(hours=2)  # 2026-03-02 01:00 UTC
    _run(billing, alice, "dear", DEAR, 499, 2)
    _run(billing, bob, "cheap", CHEAP, 200, 2)
    return billing, clock, alice, bob


def test_totals_count_charged_rows_only(database: Database) -> None:
    billing, _, alice, _ = _ledger(database)
    report = billing.usage(alice, datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 3, tzinfo=UTC))
    cheap, dear = cost_nanos(CHEAP, 1000, 100), cost_nanos(DEAR, 1000, 100)
    assert report.totals.requests == 3
    assert (report.totals.prompt_tokens, report.totals.image_tokens, report.totals.completion_tokens) == (
        3000,
        1200,
        300,
    )
    assert report.totals.cost == Decimal(cheap + 2 * dear) / 10**9 == Decimal("0.00912")
    assert report.groups == ()
    assert report.as_dict()["totals"]["cost"] == "0.00912"


def test_grouped_by_model(database: Database) -> None:
    billing, _, _, _ = _ledger(database)
    report = billing.usage(None, datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 3, tzinfo=UTC), "model")
    assert [(g.group, g.totals.requests) for g in report.groups] == [("cheap", 2), ("dear", 2)]
    assert [g["cost"] for g in report.as_dict()["groups"]] == ["0.00024", "0.009"]
    assert isinstance(report.groups[0].totals.cost, Decimal)
    assert report.totals.requests == 4


def test_grouped_by_utc_day_with_a_half_open_range(database: Database) -> None:
    billing, _, alice, _ = _ledger(database)
    report = billing.usage(alice, datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 3, tzinfo=UTC), "day")
    assert [(g.group, g.totals.requests, str(g.totals.cost)) for g in report.groups] == [
        ("2026-03-01", 2, "0.004620000"),
        ("2026-03-02", 1, "0.004500000"),
    ]
    assert [g["cost"] for g in report.as_dict()["groups"]] == ["0.00462", "0.0045"]
    first_day = billing.usage(alice, datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC), "day")
    assert [g.group for g in first_day.groups] == ["2026-03-01"]


def test_an_empty_range_is_all_zeros(database: Database) -> None:
    billing, _, _, _ = _ledger(database)
    report = billing.usage(None, datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 1, 2, tzinfo=UTC), "model")
    assert report.totals.requests == 0 and report.totals.cost == 0 and report.groups == ()
    assert report.as_dict()["totals"]["cost"] == "0"


def test_video_tokens_are_billed_as_prompt_tokens_and_reported_apart(database: Database) -> None:
    billing = Billing(database, InProcessRateLimiter(), clock=FakeClock(datetime(2026, 3, 1, 12, tzinfo=UTC)))
    key = billing.keys.create("carol", balance="10").key
    admission = billing.admit(key, "cheap", CHEAP, 1000, 100, "video-1")
    settled = billing.settle(admission, 200, Usage(prompt_tokens=1000, completion_tokens=100, image_tokens=100, video_tokens=600))
    assert settled.cost_nanos == cost_nanos(CHEAP, 1000, 100)  # at the input price, as image tokens are
    report = billing.usage(key.id, datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC))
    totals = report.totals
    assert (totals.prompt_tokens, totals.image_tokens, totals.video_tokens) == (1000, 100, 600)
    assert report.as_dict()["totals"]["video_tokens"] == 600
