"""Small builders shared by the emulator tests."""

from __future__ import annotations

from typing import Any

import stripe

from tests.emulator.conftest import Emu

DAY = 86400
PERIOD_30D = 30 * DAY


async def customer_with_card(
    emu: Emu, token: str = "pm_card_visa", **fields: Any
) -> stripe.Customer:
    customer = await emu.client.v1.customers.create_async(params={"name": "Globex", **fields})
    method = await emu.client.v1.payment_methods.attach_async(
        token, params={"customer": customer.id}
    )
    return await emu.client.v1.customers.update_async(
        customer.id, params={"invoice_settings": {"default_payment_method": method.id}}
    )


async def price(
    emu: Emu, unit_amount: int, *, name: str = "Pro seat", days: int | None = 30, **extra: Any
) -> stripe.Price:
    """A recurring price; `days=30` makes a 30-day period so prorations are easy to compute."""
    recurring: dict[str, Any] = (
        {"interval": "day", "interval_count": days} if days else {"interval": "month"}
    )
    return await emu.client.v1.prices.create_async(
        params={
            "currency": "usd",
            "unit_amount": unit_amount,
            "recurring": recurring,
            "product_data": {"name": name},
            **extra,
        }
    )


async def no_finalize_delay(emu: Emu) -> None:
    await emu.control("config", {"finalize_delay": 0})
