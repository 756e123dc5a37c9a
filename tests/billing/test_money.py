from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loupe.billing.money import (
    MAX_AMOUNT,
    MAX_NANOS,
    cost_nanos,
    format_money,
    from_nanos,
    prices_of,
    to_decimal,
    to_nanos,
)
from loupe.domain import Prices


def test_cost_is_rounded_up_to_a_whole_nano_unit() -> None:
    prices = prices_of("0.15", "0.6")
    assert cost_nanos(prices, 1000, 500) == 450_000  # 0.00015 + 0.0003
    assert cost_nanos(prices_of("0.0000001", "0"), 1, 0) == 1  # 1e-4 nano-units rounds up to 1
    assert cost_nanos(prices_of("0", "0"), 10**9, 10**9) == 0
    assert cost_nanos(prices_of("1", "2"), 10**12, 10**12) == 3 * 10**15


@given(
    prompt=st.integers(0, 10**9),
    completion=st.integers(0, 10**9),
    inp=st.decimals(0, 1000, places=7, allow_nan=False),
    out=st.decimals(0, 1000, places=7, allow_nan=False),
)
def test_cost_is_the_exact_price_rounded_up(prompt: int, completion: int, inp: Decimal, out: Decimal) -> None:
    exact = (Fraction(prompt) * Fraction(inp) + Fraction(completion) * Fraction(out)) * 1000
    assert cost_nanos(Prices(inp, out), prompt, completion) == math.ceil(exact)


def test_config_values_may_be_strings_ints_or_floats() -> None:
    assert prices_of(0.1, 3) == Prices(Decimal("0.1"), Decimal("3"))
    assert prices_of("2.50", Decimal("10")) == Prices(Decimal("2.50"), Decimal("10"))
    for bad in ("-1", "nan", "inf", "abc", True, None):
        with pytest.raises(ValueError):
            to_decimal(bad)  # type: ignore[arg-type]


def test_amounts_in_nano_units_and_back() -> None:
    assert to_nanos("12.5") == 12_500_000_000
    assert to_nanos(0.1) == 100_000_000
    with pytest.raises(ValueError):
        to_nanos("0.0000000001")
    assert from_nanos(123_000) == Decimal("0.000123")


@pytest.mark.parametrize(
    ("nanos", "text"),
    [(0, "0"), (1, "0.000000001"), (123_000, "0.000123"), (10**9, "1"), (10**10, "10"), (-5 * 10**8, "-0.5")],
)
def test_format_money_is_a_plain_decimal_string(nanos: int, text: str) -> None:
    assert format_money(nanos) == text


def test_amounts_are_refused_beyond_what_a_bigint_holds() -> None:
    assert to_nanos("9223372036.854775807") == MAX_NANOS == 2**63 - 1
    assert from_nanos(MAX_NANOS) == MAX_AMOUNT == Decimal("9223372036.854775807")
    for beyond in ("9223372036.854775808", "1e10", 1e10, "1e1000000"):
        with pytest.raises(ValueError, match="at most 9223372036.854775807"):
            to_nanos(beyond, what="balance")


def test_decimals_are_counted_exactly_whatever_their_length() -> None:
    assert to_nanos("1." + "0" * 100) == 10**9
    for inexact in ("1.0000000000000000000000000000001", "1e-1000000"):
        with pytest.raises(ValueError, match="more than 9 decimals"):
            to_nanos(inexact)
