"""Subscriptions: life cycle, statuses, trials, cancellation, and proration amounts checked
against hand-computed values (30-day periods: 2,592,000 s)."""

from __future__ import annotations

import pytest
import stripe

from tests.emulator.conftest import Emu
from tests.emulator.helpers import DAY, PERIOD_30D, customer_with_card, no_finalize_delay, price


async def _subscribe(emu: Emu, unit_amount: int = 1500, quantity: int = 5, **params: object):
    customer = await customer_with_card(emu)
    seat = await price(emu, unit_amount)
    subscription = await emu.client.v1.subscriptions.create_async(
        params={
            "customer": customer.id,
            "items": [{"price": seat.id, "quantity": quantity}],
            **params,
        }
    )
    return customer, seat, subscription


async def test_create_pays_the_first_invoice(emu: Emu) -> None:
    _customer, seat, subscription = await _subscribe(emu)
    assert subscription.status == "active"
    item = subscription["items"].data[0]
    assert item.quantity == 5 and item.price.id == seat.id
    assert item.current_period_end - item.current_period_start == PERIOD_30D
    invoice = await emu.client.v1.invoices.retrieve_async(str(subscription.latest_invoice))
    assert invoice.status == "paid" and invoice.amount_paid == 7500
    assert invoice.billing_reason == "subscription_create"
    assert invoice.parent is not None and invoice.parent.subscription_details is not None
    assert invoice.parent.subscription_details.subscription == subscription.id
    assert invoice.lines.data[0].pricing is not None
    assert invoice.number is not None and invoice.hosted_invoice_url is not None
    payments = await emu.client.v1.invoice_payments.list_async(params={"invoice": invoice.id})
    assert payments.data[0].amount_paid == 7500
    types = await emu.types()
    assert types[types.index("customer.subscription.created") :] == [
        "customer.subscription.created",
        "invoice.created",
        "invoice.finalized",
        "invoice.updated",
        "invoice.paid",
        "invoice.payment_succeeded",
        "invoice_payment.paid",
        "customer.subscription.updated",
    ]
    [created] = await emu.events(type="customer.subscription.created")
    assert created.data.object["status"] == "incomplete"
    [updated] = await emu.events(type="customer.subscription.updated")
    assert updated.data.previous_attributes.to_dict() == {"status": "incomplete"}


async def test_quantity_change_with_create_prorations(emu: Emu) -> None:
    customer, _, subscription = await _subscribe(emu)
    item = subscription["items"].data[0]
    at = item.current_period_start + 10 * DAY  # 20 of 30 days left
    await emu.client.v1.subscriptions.update_async(
        subscription.id,
        params={"items": [{"id": item.id, "quantity": 8}], "proration_date": at},
        options={"idempotency_key": "sf-18343555-001-seats"},
    )
    pending = await emu.client.v1.invoice_items.list_async(
        params={"customer": customer.id, "pending": True}
    )
    amounts = sorted(ii.amount for ii in pending.data)
    assert amounts == [-5000, 8000]  # -(7500 * 2/3), +(12000 * 2/3)
    assert all(ii.proration for ii in pending.data)
    [updated] = await emu.events(type="customer.subscription.updated", limit=1)
    assert updated.request is not None
    assert updated.request.idempotency_key == "sf-18343555-001-seats"
    previous = updated.data.previous_attributes.to_dict()
    assert previous["items"]["data"][0]["quantity"] == 5
    # The next renewal invoice carries the prorations and the new quantity.
    await no_finalize_delay(emu)
    await emu.advance(PERIOD_30D)
    renewal = (
        await emu.client.v1.invoices.list_async(params={"subscription": subscription.id})
    ).data[0]
    assert renewal.billing_reason == "subscription_cycle"
    assert sorted(line.amount for line in renewal.lines.data) == [-5000, 8000, 12000]
    assert renewal.total == 15000 and renewal.status == "paid"
    proration_lines = [
        line for line in renewal.lines.data if line.parent.subscription_item_details.proration
    ]
    assert len(proration_lines) == 2


async def test_always_invoice_charges_at_once(emu: Emu) -> None:
    _, _, subscription = await _subscribe(emu)
    item = subscription["items"].data[0]
    at = item.current_period_start + 10 * DAY
    updated = await emu.client.v1.subscriptions.update_async(
        subscription.id,
        params={
            "items": [{"id": item.id, "quantity": 8}],
            "proration_behavior": "always_invoice",
            "proration_date": at,
        },
    )
    invoice = await emu.client.v1.invoices.retrieve_async(str(updated.latest_invoice))
    assert invoice.billing_reason == "subscription_update"
    assert invoice.total == 3000 and invoice.status == "paid"


async def test_proration_none_and_price_swap_rounding(emu: Emu) -> None:
    customer, _, subscription = await _subscribe(emu, unit_amount=999, quantity=1)
    item = subscription["items"].data[0]
    await emu.client.v1.subscriptions.update_async(
        subscription.id,
        params={"items": [{"id": item.id, "quantity": 2}], "proration_behavior": "none"},
    )
    pending = await emu.client.v1.invoice_items.list_async(
        params={"customer": customer.id, "pending": True}
    )
    assert pending.data == []
    premium = await price(emu, 1999, name="Premium")
    at = item.current_period_start + 7 * DAY  # 23 of 30 days left
    preview = await emu.client.v1.invoices.create_preview_async(
        params={
            "subscription": subscription.id,
            "subscription_details": {
                "items": [{"id": item.id, "price": premium.id, "quantity": 2}],
                "proration_date": at,
            },
        }
    )
    await emu.client.v1.subscriptions.update_async(
        subscription.id,
        params={"items": [{"id": item.id, "price": premium.id}], "proration_date": at},
    )
    pending = await emu.client.v1.invoice_items.list_async(
        params={"customer": customer.id, "pending": True}
    )
    # 1998 * 23/30 = 1531.8 -> 1532 credit; 3998 * 23/30 = 3065.13 -> 3065 charge.
    assert sorted(ii.amount for ii in pending.data) == [-1532, 3065]
    assert sorted(line.amount for line in preview.lines.data) == [-1532, 3065, 3998]
    assert preview.id is not None and preview.id.startswith("upcoming_")
    # The preview changed nothing else.
    assert len(pending.data) == 2


async def test_per_line_rounding(emu: Emu) -> None:
    customer, _, subscription = await _subscribe(emu, unit_amount=999, quantity=1)
    item = subscription["items"].data[0]
    premium = await price(emu, 1999, name="Premium")
    await emu.client.v1.subscriptions.update_async(
        subscription.id,
        params={
            "items": [{"id": item.id, "price": premium.id}],
            "proration_date": item.current_period_start + 7 * DAY,
        },
    )
    pending = await emu.client.v1.invoice_items.list_async(
        params={"customer": customer.id, "pending": True}
    )
    # 999 * 23/30 = 765.9 -> 766; 1999 * 23/30 = 1532.57 -> 1533 (net 767, not 1000*23/30=767).
    assert sorted(ii.amount for ii in pending.data) == [-766, 1533]


async def test_proration_date_outside_period_is_refused(emu: Emu) -> None:
    _, _, subscription = await _subscribe(emu)
    item = subscription["items"].data[0]
    with pytest.raises(stripe.InvalidRequestError) as refused:
        await emu.client.v1.subscriptions.update_async(
            subscription.id,
            params={
                "items": [{"id": item.id, "quantity": 2}],
                "proration_date": item.current_period_end + 1,
            },
        )
    assert refused.value.param == "proration_date"


async def test_items_added_and_removed(emu: Emu) -> None:
    customer, _, subscription = await _subscribe(emu)
    item = subscription["items"].data[0]
    addon = await price(emu, 3000, name="Add-on")
    at = item.current_period_start + 15 * DAY
    updated = await emu.client.v1.subscriptions.update_async(
        subscription.id,
        params={
            "items": [{"id": item.id, "deleted": True}, {"price": addon.id}],
            "proration_date": at,
        },
    )
    assert [i.price.id for i in updated["items"].data] == [addon.id]
    pending = await emu.client.v1.invoice_items.list_async(
        params={"customer": customer.id, "pending": True}
    )
    assert sorted(ii.amount for ii in pending.data) == [-3750, 1500]


async def test_trial(emu: Emu) -> None:
    await no_finalize_delay(emu)
    _customer, _, subscription = await _subscribe(emu, trial_period_days=14)
    assert subscription.status == "trialing"
    first = await emu.client.v1.invoices.retrieve_async(str(subscription.latest_invoice))
    assert first.total == 0 and first.status == "paid"
    await emu.advance(11 * DAY)
    assert await emu.types(type="customer.subscription.trial_will_end") == [
        "customer.subscription.trial_will_end"
    ]
    [notice] = await emu.events(type="customer.subscription.trial_will_end")
    assert notice.request is not None and notice.request.id is None
    await emu.advance(3 * DAY)
    after = await emu.client.v1.subscriptions.retrieve_async(subscription.id)
    assert after.status == "active" and after.latest_invoice != subscription.latest_invoice
    invoice = await emu.client.v1.invoices.retrieve_async(str(after.latest_invoice))
    assert invoice.total == 7500 and invoice.status == "paid"
    assert (
        after["items"].data[0].current_period_end - after["items"].data[0].current_period_start
        == PERIOD_30D
    )


async def test_cancel_at_period_end_and_now(emu: Emu) -> None:
    _, _, subscription = await _subscribe(emu)
    updated = await emu.client.v1.subscriptions.update_async(
        subscription.id, params={"cancel_at_period_end": True}
    )
    assert updated.cancel_at_period_end and updated.status == "active"
    [event] = await emu.events(type="customer.subscription.updated", limit=1)
    assert event.data.previous_attributes.to_dict()["cancel_at_period_end"] is False
    await emu.advance(PERIOD_30D)
    ended = await emu.client.v1.subscriptions.retrieve_async(subscription.id)
    assert ended.status == "canceled"
    [deleted] = await emu.events(type="customer.subscription.deleted")
    assert deleted.request is not None and deleted.request.id is None
    _, _, other = await _subscribe(emu)
    canceled = await emu.client.v1.subscriptions.cancel_async(other.id)
    assert canceled.status == "canceled" and canceled.canceled_at == emu.now
    listed = await emu.client.v1.subscriptions.list_async()
    assert listed.data == []
    everything = await emu.client.v1.subscriptions.list_async(params={"status": "all"})
    assert len(everything.data) == 2


async def test_failing_card_leaves_it_incomplete_then_expired(emu: Emu) -> None:
    customer = await customer_with_card(emu, "pm_card_chargeCustomerFail")
    seat = await price(emu, 1500)
    subscription = await emu.client.v1.subscriptions.create_async(
        params={"customer": customer.id, "items": [{"price": seat.id}]}
    )
    assert subscription.status == "incomplete"
    invoice = await emu.client.v1.invoices.retrieve_async(str(subscription.latest_invoice))
    assert invoice.status == "open" and invoice.attempt_count == 1
    assert invoice.next_payment_attempt is None
    with pytest.raises(stripe.CardError):
        await emu.client.v1.subscriptions.create_async(
            params={
                "customer": customer.id,
                "items": [{"price": seat.id}],
                "payment_behavior": "error_if_incomplete",
            }
        )
    await emu.advance(23 * 3600)
    expired = await emu.client.v1.subscriptions.retrieve_async(subscription.id)
    assert expired.status == "incomplete_expired"
    voided = await emu.client.v1.invoices.retrieve_async(invoice.id)
    assert voided.status == "void"


async def test_subscription_item_endpoints(emu: Emu) -> None:
    customer, _, subscription = await _subscribe(emu)
    item = subscription["items"].data[0]
    changed = await emu.client.v1.subscription_items.update_async(
        item.id, params={"quantity": 6, "proration_behavior": "none"}
    )
    assert changed.quantity == 6
    listed = await emu.client.v1.subscription_items.list_async(
        params={"subscription": subscription.id}
    )
    assert [i.quantity for i in listed.data] == [6]
    del customer


async def test_plan_subscription(emu: Emu) -> None:
    customer = await customer_with_card(emu)
    plan = await emu.client.v1.plans.create_async(
        params={"amount": 2000, "currency": "usd", "interval": "month", "product": {"name": "Gold"}}
    )
    subscription = await emu.client.v1.subscriptions.create_async(
        params={"customer": customer.id, "items": [{"plan": plan.id}]}
    )
    assert subscription["items"].data[0].plan.amount == 2000
    assert subscription.status == "active"
