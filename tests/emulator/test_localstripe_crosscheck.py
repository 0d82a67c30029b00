"""Where localstripe supports the same calls (customers, payment method attach, a plan
subscription, webhook signing), run one story on both and compare what the SDK sees."""

from __future__ import annotations

import asyncio
from typing import Any

import stripe

from tests.emulator.conftest import Emu, Receiver, receiving
from tests.localstripe_fixture import LocalStripe, localstripe_fixture  # noqa: F401

SECRET = "whsec_crosscheck_0123456789abcdef"


async def _story(client: stripe.StripeClient) -> dict[str, Any]:
    """The SDK's view of one story, reduced to what both servers should agree on."""
    customer = await client.v1.customers.create_async(
        params={
            "name": "Globex",
            "email": "billing@globex.example.com",
            "metadata": {"sf_account_id": "001A"},
        }
    )
    card = await client.v1.payment_methods.attach_async(
        "pm_card_visa", params={"customer": customer.id}
    )
    customer = await client.v1.customers.update_async(
        customer.id, params={"invoice_settings": {"default_payment_method": card.id}}
    )
    plan = await client.v1.plans.create_async(
        params={
            "amount": 1500,
            "currency": "usd",
            "interval": "month",
            "nickname": "Pro seat (monthly)",
            "product": {"name": "Pro seat"},
        }
    )
    subscription = await client.v1.subscriptions.create_async(
        params={"customer": customer.id, "items": [{"plan": plan.id, "quantity": 3}]}
    )
    item = subscription["items"].data[0]
    assert card.card is not None
    return {
        "customer": {
            "object": customer.object,
            "id_prefix": customer.id[:4],
            "email": customer.email,
            "name": customer.name,
            "metadata": customer.metadata.to_dict(),
            "default_payment_method": customer.invoice_settings.default_payment_method == card.id,
        },
        "card": {
            "object": card.object,
            "type": card.type,
            "brand": card.card.brand,
            "last4": card.card.last4,
            "attached": card.customer == customer.id,
            "id_prefix": card.id[:3],
        },
        "plan": {
            "object": plan.object,
            "amount": plan.amount,
            "currency": plan.currency,
            "interval": plan.interval,
            "nickname": plan.nickname,
        },
        "subscription": {
            "object": subscription.object,
            "status": subscription.status,
            "customer": subscription.customer == customer.id,
            "plan": item.plan.id == plan.id,
            "quantity": item.quantity,
            "cancel_at_period_end": subscription.cancel_at_period_end,
        },
        "customer_id": customer.id,
    }


async def _signed_customer_created(rx: Receiver, secret: str, customer_id: str) -> dict[str, Any]:
    for _ in range(200):
        for body, header in zip(rx.bodies, rx.signatures, strict=True):
            event = stripe.Webhook.construct_event(body, header, secret)
            if event.type == "customer.created" and event.data.object["id"] == customer_id:
                return {
                    "object": event.object,
                    "type": event.type,
                    "data_object": event.data.object["object"],
                    "id_prefix": event.id[:4],
                    "scheme": sorted(part.split("=")[0] for part in header.split(",")),
                }
        await asyncio.sleep(0.05)
    raise AssertionError("no signed customer.created arrived")


async def test_same_story_on_localstripe_and_the_emulator(
    emu: Emu, localstripe: LocalStripe
) -> None:
    async with receiving() as local_rx, receiving() as emu_rx:
        await localstripe.configure_webhook("crosscheck", local_rx.url, SECRET)
        endpoint = await emu.client.v1.webhook_endpoints.create_async(
            params={"url": emu_rx.url, "enabled_events": ["*"]}
        )
        client, http = localstripe.client()
        try:
            theirs = await _story(client)
        finally:
            await http.close_async()  # type: ignore[no-untyped-call]
        ours = await _story(emu.client)
        their_webhook = await _signed_customer_created(local_rx, SECRET, theirs.pop("customer_id"))
        assert endpoint.secret is not None
        our_webhook = await _signed_customer_created(
            emu_rx, endpoint.secret, ours.pop("customer_id")
        )
    assert ours == theirs
    assert our_webhook == their_webhook
