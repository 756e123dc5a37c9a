"""What a client tags a request with (`user`, `safety_identifier`, `metadata`) stays on its ledger
row, and usage reports group by it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from loupe.billing import Billing, Database, InProcessRateLimiter, prices_of
from loupe.billing.ledger import Tags

from .support import usage

PRICES = prices_of("1", "2")
SPAN = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def _settled(billing: Billing, key_id: str, request_id: str, tags: Tags, status: int = 200) -> None:
    admission = billing.admit(billing.keys.get(key_id), "m", PRICES, 100, 10, request_id, tags)
    billing.settle(admission, status, usage(100, 10, images=40))


def test_tags_are_kept_on_the_ledger_row(database: Database) -> None:
    billing = Billing(database, InProcessRateLimiter())
    key = billing.keys.create("k").key.id
    tags = Tags("user-1", "hashed-1", (("project", "invoices"), ("run", "7")))
    _settled(billing, key, "r1", tags)
    _settled(billing, key, "r2", Tags())
    entry, bare = billing.ledger.entry("r1"), billing.ledger.entry("r2")
    assert entry is not None and entry.tags == tags
    assert bare is not None and bare.tags == Tags()


def test_a_refused_request_keeps_its_tags_too(database: Database) -> None:
    billing = Billing(database, InProcessRateLimiter())
    key = billing.keys.create("k").key.id
    admission = billing.admit(billing.keys.get(key), "m", PRICES, 100, 10, "r1", Tags(user="u"))
    billing.cancel(admission, 500)
    entry = billing.ledger.entry("r1")
    assert entry is not None and entry.tags.user == "u" and not entry.outcome.charged


def test_usage_groups_by_user_and_by_a_metadata_key(database: Database) -> None:
    billing = Billing(database, InProcessRateLimiter())
    key = billing.keys.create("k").key.id
    _settled(billing, key, "a", Tags("ann", metadata=(("project", "invoices"),)))
    _settled(billing, key, "b", Tags("ann", metadata=(("project", "receipts"),)))
    _settled(billing, key, "c", Tags("bob", metadata=(("project", "invoices"), ("run", "2"))))
    _settled(billing, key, "d", Tags())
    _settled(billing, key, "e", Tags("bob", metadata=(("project", "invoices"),)), status=500)  # not charged
    by_project = billing.usage(key, *SPAN, "metadata.project")
    assert {g.group: g.totals.requests for g in by_project.groups} == {None: 1, "invoices": 2, "receipts": 1}
    by_user = billing.usage(key, *SPAN, "user")
    assert {g.group: g.totals.completion_tokens for g in by_user.groups} == {None: 10, "ann": 20, "bob": 10}
    assert by_project.as_dict()["groups"][0]["requests"] >= 1


def test_an_unknown_grouping_is_refused(database: Database) -> None:
    billing = Billing(database, InProcessRateLimiter())
    key = billing.keys.create("k").key.id
    with pytest.raises(ValueError, match="cannot group"):
        billing.usage(key, *SPAN, "colour")
