"""Money: prices per million tokens as Decimal, amounts as integer nano-units, never float.

One nano-unit is 1e-9 of the currency. A request's cost is rounded up to a whole nano-unit:
cost = ceil((prompt_tokens * input_price + completion_tokens * output_price) / 1e6 * 1e9).
Rounding once per request, upwards, means a charge is never below the list price, and the
error is under one nano-unit per request.

Amounts are stored in signed 64-bit integer columns (BIGINT), so one amount holds at most
MAX_NANOS, 9,223,372,036.854775807 of the currency. This module is the one boundary between the
two: every other layer keeps Decimal, and anything outside the range is refused here.
"""

from __future__ import annotations

import decimal
from decimal import Decimal

from loupe.domain import Prices

NANOS_PER_UNIT = 10**9
# What a BIGINT column holds, on SQLite and PostgreSQL alike.
MAX_NANOS = 2**63 - 1
MIN_NANOS = -(2**63)
_TOKENS_PER_PRICE = 10**6
# Enough digits that no product of a token count and a price is ever rounded.
_EXACT = decimal.Context(prec=80, traps=[decimal.Inexact, decimal.InvalidOperation])
_ONE_NANO = Decimal("1e-9")

MoneyInput = Decimal | str | int | float


def to_decimal(value: MoneyInput, *, what: str = "amount") -> Decimal:
    """A config or CLI value as a finite, non-negative Decimal.

    Floats are read through their shortest repr (0.1 -> Decimal("0.1")), so a TOML `0.15` means
    what it says. Raises ValueError for anything else.
    """
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number, not {value!r}")
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except (decimal.InvalidOperation, TypeError, ValueError):
        raise ValueError(f"{what} must be a decimal number, not {value!r}") from None
    if not number.is_finite() or number < 0:
        raise ValueError(f"{what} must be a finite number >= 0, not {value!r}")
    return number


def to_nanos(value: MoneyInput, *, what: str = "amount") -> int:
    """A currency amount ("12.5") as nano-units.

    Raises ValueError for more than nine decimals, or for more than the largest amount
    (`MAX_NANOS`) a balance or charge can hold.
    """
    number = to_decimal(value, what=what)
    if number > MAX_AMOUNT:
        raise ValueError(f"{what} must be at most {MAX_AMOUNT}, the largest amount Loupe stores")
    try:
        whole = number.quantize(_ONE_NANO, context=_EXACT)
    except decimal.Inexact:
        raise ValueError(f"{what} has more than 9 decimals: {value!r}") from None
    return int(whole.scaleb(9))


def from_nanos(nanos: int) -> Decimal:
    """Nano-units as an exact Decimal of the currency."""
    return Decimal(nanos).scaleb(-9)


MAX_AMOUNT = from_nanos(MAX_NANOS)  # 9223372036.854775807


def format_money(nanos: int) -> str:
    """Nano-units as a plain decimal string without exponent or trailing zeros: "0.000123"."""
    text = format(from_nanos(nanos), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def prices_of(input_per_m: MoneyInput, output_per_m: MoneyInput, currency: str = "USD") -> Prices:
    """Validated prices from config or CLI values (strings, ints, floats, Decimals)."""
    return Prices(
        to_decimal(input_per_m, what="input price"),
        to_decimal(output_per_m, what="output price"),
        currency,
    )


def cost_nanos(prices: Prices, prompt_tokens: int, completion_tokens: int) -> int:
    """The cost of a request in nano-units, rounded up (see the module docstring)."""
    if prompt_tokens < 0 or completion_tokens < 0:
        raise ValueError("token counts must be >= 0")
    ctx = _EXACT
    total = ctx.add(
        ctx.multiply(Decimal(prompt_tokens), prices.input_per_m),
        ctx.multiply(Decimal(completion_tokens), prices.output_per_m),
    )
    # per million tokens -> per token is /1e6; currency -> nano-units is *1e9.
    nanos = total.scaleb(9 - 6, context=ctx)
    return int(nanos.to_integral_value(rounding=decimal.ROUND_CEILING))
