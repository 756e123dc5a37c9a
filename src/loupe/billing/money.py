"""Money: prices per million tokens as Decimal, amounts as integer nano-units, never float.

One nano-unit is 1e-9 of the currency. A request's cost is rounded up to a whole nano-unit:
cost = ceil((prompt_tokens * input_price + completion_tokens * output_price) / 1e6 * 1e9).
Rounding once per request, upwards, means a charge is never below the list price, and the
error is under one nano-unit per request.
"""

from __future__ import annotations

import decimal
from decimal import Decimal

from loupe.domain import Prices

NANOS_PER_UNIT = 10**9
_TOKENS_PER_PRICE = 10**6
# Enough digits that no product of a token count and a price is ever rounded.
_EXACT = decimal.Context(prec=80, traps=[decimal.Inexact, decimal.InvalidOperation])

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
    """A currency amount ("12.5") as nano-units; more than nine decimals is refused."""
    scaled = to_decimal(value, what=what).scaleb(9)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{what} has more than 9 decimals: {value!r}")
    return int(scaled)


def from_nanos(nanos: int) -> Decimal:
    """Nano-units as an exact Decimal of the currency."""
    return Decimal(nanos).scaleb(-9)


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
