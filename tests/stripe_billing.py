"""Stripe Billing set-ups the sync tests share, through the real SDK (emulator or localstripe)."""

from __future__ import annotations

import stripe


async def pay_with(client: stripe.StripeClient, customer: str, payment_method: str) -> str:
    """Attach a payment method to the customer and make it the default for invoices: its id."""
    method = await client.v1.payment_methods.attach_async(
        payment_method, params={"customer": customer}
    )
    await client.v1.customers.update_async(
        customer, params={"invoice_settings": {"default_payment_method": method.id}}
    )
    return method.id


async def subscribe(
    client: stripe.StripeClient,
    customer: str,
    *,
    product: str,
    unit_amount: int,
    currency: str = "usd",
    interval: str = "month",
    quantity: int = 1,
) -> stripe.Subscription:
    """A subscription to a new recurring price of a new product."""
    made = await client.v1.products.create_async(params={"name": product})
    price = await client.v1.prices.create_async(
        params={
            "product": made.id,
            "currency": currency,
            "unit_amount": unit_amount,
            "recurring": {"interval": interval},
        }
    )
    return await client.v1.subscriptions.create_async(
        params={"customer": customer, "items": [{"price": price.id, "quantity": quantity}]}
    )
