"""Stripe's proration rule, as pure arithmetic.

A change at instant `at` inside the period [start, end) is charged per second: the old item gets
a credit for its unused time, `-(amount * (end - at) / (end - start))`, the new one a charge for
the remaining time, `amount * (end - at) / (end - start)`; each line is rounded to the minor unit
on its own (half away from zero), so the net of a credit and a charge can differ from prorating
the difference by one cent.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal


def unused_fraction(start: int, end: int, at: int) -> Decimal:
    """Share of the period [start, end) left at `at` (0 to 1)."""
    if end <= start:
        return Decimal(0)
    at = min(max(at, start), end)
    return Decimal(end - at) / Decimal(end - start)


def prorated(amount: Decimal | int, start: int, end: int, at: int) -> int:
    """`amount` (minor units, for the whole period) scaled to the time left, rounded."""
    exact = Decimal(amount) * unused_fraction(start, end, at)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def line_amount(unit_amount_decimal: str, quantity: int) -> Decimal:
    return Decimal(unit_amount_decimal) * quantity
