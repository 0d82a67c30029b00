"""Invoices, the test clock and dunning, credit notes, meters, the portal, and the catalog."""

from __future__ import annotations

import pytest
import stripe

from tests.emulator.conftest import Emu
from tests.emulator.helpers import DAY, PERIOD_30D, customer_with_card, no_finalize_delay, price


async def test_invoice_life_cycle(emu: Emu) -> None:
    customer = await customer_with_card(emu)
    await emu.client.v1.invoice_items.create_async(
        params={"customer": customer.id, "amount": 2500, "currency": "usd", "description": "Setup"}
    )
    invoice = await emu.client.v1.invoices.create_async(
        params={"customer": customer.id, "pending_invoice_items_behavior": "include"}
    )
    assert invoice.status == "draft" and invoice.total == 2500
    assert invoice.lines.data[0].parent.type == "invoice_item_details"
    invoice = await emu.client.v1.invoices.finalize_invoice_async(invoice.id)
    assert invoice.status == "open" and invoice.number and invoice.invoice_pdf
    async with emu.http.get(invoice.invoice_pdf) as pdf:
        assert (await pdf.read()).startswith(b"%PDF")
    async with emu.http.get(str(invoice.hosted_invoice_url)) as page:
        assert page.status == 200
    paid = await emu.client.v1.invoices.pay_async(invoice.id)
    assert paid.status == "paid" and paid.attempt_count == 1 and paid.amount_remaining == 0
    assert paid.status_transitions.paid_at == emu.now
    with pytest.raises(stripe.InvalidRequestError):
        await emu.client.v1.invoices.void_invoice_async(invoice.id)
    other = await emu.client.v1.invoices.create_async(params={"customer": customer.id})
    await emu.client.v1.invoice_items.create_async(
        params={"customer": customer.id, "invoice": other.id, "amount": 100, "currency": "usd"}
    )
    await emu.client.v1.invoices.finalize_invoice_async(other.id)
    assert (await emu.client.v1.invoices.void_invoice_async(other.id)).status == "void"
    third = await emu.client.v1.invoices.create_async(params={"customer": customer.id})
    await emu.client.v1.invoice_items.create_async(
        params={"customer": customer.id, "invoice": third.id, "amount": 100, "currency": "usd"}
    )
    await emu.client.v1.invoices.finalize_invoice_async(third.id)
    marked = await emu.client.v1.invoices.mark_uncollectible_async(third.id)
    assert marked.status == "uncollectible"
    draft = await emu.client.v1.invoices.create_async(params={"customer": customer.id})
    await emu.client.v1.invoices.delete_async(draft.id)
    types = await emu.types(type="invoice.*")
    for expected in (
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
        "invoice.voided",
        "invoice.marked_uncollectible",
        "invoice.deleted",
    ):
        assert expected in types


async def test_declined_pay_counts_the_attempt(emu: Emu) -> None:
    customer = await customer_with_card(emu, "pm_card_chargeCustomerFail")
    await emu.client.v1.invoice_items.create_async(
        params={"customer": customer.id, "amount": 700, "currency": "usd"}
    )
    invoice = await emu.client.v1.invoices.create_async(
        params={"customer": customer.id, "pending_invoice_items_behavior": "include"}
    )
    with pytest.raises(stripe.CardError) as declined:
        await emu.client.v1.invoices.pay_async(invoice.id)
    assert declined.value.code == "card_declined"
    after = await emu.client.v1.invoices.retrieve_async(invoice.id)
    assert after.status == "open" and after.attempt_count == 1 and after.attempted
    assert "invoice.payment_failed" in await emu.types()


async def test_renewal_and_dunning_to_canceled(emu: Emu) -> None:
    await no_finalize_delay(emu)
    customer = await customer_with_card(emu)
    seat = await price(emu, 1500)
    subscription = await emu.client.v1.subscriptions.create_async(
        params={"customer": customer.id, "items": [{"price": seat.id}]}
    )
    failing = await emu.client.v1.payment_methods.attach_async(
        "pm_card_chargeCustomerFail", params={"customer": customer.id}
    )
    await emu.client.v1.customers.update_async(
        customer.id, params={"invoice_settings": {"default_payment_method": failing.id}}
    )
    period_end = subscription["items"].data[0].current_period_end
    await emu.advance(PERIOD_30D)
    renewed = await emu.client.v1.subscriptions.retrieve_async(subscription.id)
    assert renewed.status == "past_due"
    assert renewed["items"].data[0].current_period_start == period_end
    invoice = await emu.client.v1.invoices.retrieve_async(str(renewed.latest_invoice))
    assert invoice.attempt_count == 1 and invoice.next_payment_attempt == period_end + 3 * DAY
    [failed] = await emu.events(type="invoice.payment_failed")
    assert failed.request is not None and failed.request.id is None
    assert failed.created == period_end
    await emu.advance(3 * DAY)
    invoice = await emu.client.v1.invoices.retrieve_async(invoice.id)
    assert invoice.attempt_count == 2 and invoice.next_payment_attempt == period_end + 8 * DAY
    await emu.advance(12 * DAY)
    invoice = await emu.client.v1.invoices.retrieve_async(invoice.id)
    assert invoice.attempt_count == 4 and invoice.next_payment_attempt is None
    assert invoice.status == "open"
    ended = await emu.client.v1.subscriptions.retrieve_async(subscription.id)
    assert ended.status == "canceled"
    assert ended.cancellation_details is not None
    assert ended.cancellation_details.reason == "payment_failed"


async def test_dunning_to_unpaid_and_uncollectible_then_recovery(emu: Emu) -> None:
    await emu.control(
        "config",
        {
            "finalize_delay": 0,
            "dunning": {
                "retry_delays": [DAY],
                "subscription_status": "unpaid",
                "invoice_status": "uncollectible",
            },
        },
    )
    customer = await customer_with_card(emu)
    seat = await price(emu, 1500)
    subscription = await emu.client.v1.subscriptions.create_async(
        params={"customer": customer.id, "items": [{"price": seat.id}]}
    )
    session = await emu.client.v1.billing_portal.sessions.create_async(
        params={"customer": customer.id}
    )
    await emu.control(
        f"portal/{session.id}/update_payment_method",
        {"payment_method": "pm_card_chargeCustomerFail"},
    )
    await emu.advance(PERIOD_30D + DAY)
    unpaid = await emu.client.v1.subscriptions.retrieve_async(subscription.id)
    assert unpaid.status == "unpaid"
    invoice = await emu.client.v1.invoices.retrieve_async(str(unpaid.latest_invoice))
    assert invoice.status == "uncollectible" and invoice.attempt_count == 2
    # The customer fixes the card in a new portal session (the first one expired) and pays.
    session = await emu.client.v1.billing_portal.sessions.create_async(
        params={"customer": customer.id}
    )
    await emu.control(
        f"portal/{session.id}/update_payment_method", {"payment_method": "pm_card_visa"}
    )
    await emu.client.v1.invoices.pay_async(invoice.id)
    assert (await emu.client.v1.subscriptions.retrieve_async(subscription.id)).status == "active"


async def test_renewal_waits_for_finalisation(emu: Emu) -> None:
    customer = await customer_with_card(emu)
    seat = await price(emu, 1500)
    subscription = await emu.client.v1.subscriptions.create_async(
        params={"customer": customer.id, "items": [{"price": seat.id}]}
    )
    await emu.advance(PERIOD_30D)
    renewed = await emu.client.v1.subscriptions.retrieve_async(subscription.id)
    draft = await emu.client.v1.invoices.retrieve_async(str(renewed.latest_invoice))
    assert draft.status == "draft"
    await emu.advance(3600)
    assert (await emu.client.v1.invoices.retrieve_async(draft.id)).status == "paid"


async def test_credit_notes(emu: Emu) -> None:
    await no_finalize_delay(emu)
    customer = await customer_with_card(emu)
    seat = await price(emu, 1500)
    subscription = await emu.client.v1.subscriptions.create_async(
        params={"customer": customer.id, "items": [{"price": seat.id}]}
    )
    note = await emu.client.v1.credit_notes.create_async(
        params={
            "invoice": str(subscription.latest_invoice),
            "amount": 500,
            "reason": "order_change",
        }
    )
    assert note.type == "post_payment" and note.total == 500
    assert (await emu.client.v1.customers.retrieve_async(customer.id)).balance == -500
    await emu.advance(PERIOD_30D)
    renewal = (
        await emu.client.v1.invoices.list_async(params={"subscription": subscription.id})
    ).data[0]
    assert renewal.total == 1500 and renewal.amount_due == 1000 and renewal.amount_paid == 1000
    assert (await emu.client.v1.customers.retrieve_async(customer.id)).balance == 0
    voided = await emu.client.v1.credit_notes.void_credit_note_async(note.id)
    assert voided.status == "void"
    assert "credit_note.created" in await emu.types() and "credit_note.voided" in await emu.types()


async def test_pre_payment_credit_note_settles_the_invoice(emu: Emu) -> None:
    customer = await emu.client.v1.customers.create_async(params={"name": "No card"})
    await emu.client.v1.invoice_items.create_async(
        params={"customer": customer.id, "amount": 800, "currency": "usd"}
    )
    invoice = await emu.client.v1.invoices.create_async(
        params={"customer": customer.id, "pending_invoice_items_behavior": "include"}
    )
    await emu.client.v1.invoices.finalize_invoice_async(invoice.id)
    await emu.client.v1.credit_notes.create_async(params={"invoice": invoice.id, "amount": 800})
    assert (await emu.client.v1.invoices.retrieve_async(invoice.id)).status == "paid"


async def test_meters_bill_usage_in_arrears(emu: Emu) -> None:
    await no_finalize_delay(emu)
    meter = await emu.client.v1.billing.meters.create_async(
        params={
            "display_name": "API calls",
            "event_name": "api_call",
            "default_aggregation": {"formula": "sum"},
        }
    )
    customer = await customer_with_card(emu)
    metered = await emu.client.v1.prices.create_async(
        params={
            "currency": "usd",
            "unit_amount": 3,
            "product_data": {"name": "API call"},
            "recurring": {
                "interval": "day",
                "interval_count": 30,
                "usage_type": "metered",
                "meter": meter.id,
            },
        }
    )
    subscription = await emu.client.v1.subscriptions.create_async(
        params={"customer": customer.id, "items": [{"price": metered.id}]}
    )
    assert "quantity" not in subscription["items"].data[0].to_dict()
    for value, identifier in ((100, "a"), (50, "b")):
        await emu.client.v1.billing.meter_events.create_async(
            params={
                "event_name": "api_call",
                "identifier": identifier,
                "payload": {"stripe_customer_id": customer.id, "value": str(value)},
            }
        )
    with pytest.raises(stripe.InvalidRequestError):
        await emu.client.v1.billing.meter_events.create_async(
            params={
                "event_name": "api_call",
                "identifier": "a",
                "payload": {"stripe_customer_id": customer.id, "value": "999"},
            }
        )
    await emu.client.v1.billing.meter_events.create_async(
        params={
            "event_name": "api_call",
            "identifier": "c",
            "payload": {"stripe_customer_id": customer.id, "value": "7"},
        }
    )
    await emu.client.v1.billing.meter_event_adjustments.create_async(
        params={"event_name": "api_call", "type": "cancel", "cancel": {"identifier": "c"}}
    )
    start = subscription["items"].data[0].current_period_start
    summaries = await emu.client.v1.billing.meters.event_summaries.list_async(
        meter.id,
        params={"customer": customer.id, "start_time": start, "end_time": start + PERIOD_30D},
    )
    assert summaries.data[0].aggregated_value == 150
    await emu.advance(PERIOD_30D)
    renewal = (
        await emu.client.v1.invoices.list_async(params={"subscription": subscription.id})
    ).data[0]
    assert [line.amount for line in renewal.lines.data] == [450]
    assert renewal.lines.data[0].quantity == 150


async def test_portal_actions(emu: Emu) -> None:
    customer = await customer_with_card(emu)
    seat = await price(emu, 1500)
    better = await price(emu, 3000, name="Team")
    subscription = await emu.client.v1.subscriptions.create_async(
        params={"customer": customer.id, "items": [{"price": seat.id}]}
    )
    session = await emu.client.v1.billing_portal.sessions.create_async(
        params={"customer": customer.id, "return_url": "https://example.com/account"}
    )
    assert session.url.startswith(emu.url)
    async with emu.http.get(session.url) as page:
        assert page.status == 200
    await emu.control(
        f"portal/{session.id}/switch_price", {"subscription": subscription.id, "price": better.id}
    )
    after = await emu.client.v1.subscriptions.retrieve_async(subscription.id)
    assert after["items"].data[0].price.id == better.id
    await emu.control(f"portal/{session.id}/cancel_subscription", {"subscription": subscription.id})
    assert (await emu.client.v1.subscriptions.retrieve_async(subscription.id)).cancel_at_period_end
    [event] = await emu.events(type="customer.subscription.updated", limit=1)
    assert event.request is not None and event.request.id is not None
    assert event.request.idempotency_key is None
    assert "billing_portal.session.created" in await emu.types()


async def test_customers_search_and_delete(emu: Emu) -> None:
    a = await emu.client.v1.customers.create_async(
        params={"email": "a@globex.example", "metadata": {"sf_account_id": "001A"}}
    )
    await emu.client.v1.customers.create_async(
        params={"email": "b@initech.example", "metadata": {"sf_account_id": "001B"}}
    )
    found = await emu.client.v1.customers.search_async(
        params={"query": "metadata['sf_account_id']:'001A'"}
    )
    assert [c.id for c in found.data] == [a.id]
    by_email = await emu.client.v1.customers.search_async(
        params={"query": "email:'a@globex.example'"}
    )
    assert [c.id for c in by_email.data] == [a.id]
    both = await emu.client.v1.customers.search_async(
        params={"query": "email~'globex' OR email~'initech'", "limit": 1}
    )
    assert both.has_more and both.next_page
    with pytest.raises(stripe.InvalidRequestError):
        await emu.client.v1.customers.search_async(params={"query": "nonsense"})
    listed = await emu.client.v1.customers.list_async(params={"email": "b@initech.example"})
    assert len(listed.data) == 1
    await emu.client.v1.customers.update_async(a.id, params={"metadata": {"sf_account_id": ""}})
    assert (await emu.client.v1.customers.retrieve_async(a.id)).metadata.to_dict() == {}
    customer = await customer_with_card(emu)
    seat = await price(emu, 1500)
    subscription = await emu.client.v1.subscriptions.create_async(
        params={"customer": customer.id, "items": [{"price": seat.id}]}
    )
    deleted = await emu.client.v1.customers.delete_async(customer.id)
    assert deleted.deleted
    assert (await emu.client.v1.subscriptions.retrieve_async(subscription.id)).status == "canceled"
    assert (await emu.types())[-2:] == ["customer.subscription.deleted", "customer.deleted"]


async def test_prices_and_products(emu: Emu) -> None:
    product = await emu.client.v1.products.create_async(params={"name": "Pro"})
    one_off = await emu.client.v1.prices.create_async(
        params={
            "currency": "usd",
            "unit_amount": 5000,
            "product": product.id,
            "lookup_key": "setup",
        }
    )
    assert one_off.type == "one_time" and one_off.recurring is None
    with pytest.raises(stripe.InvalidRequestError):
        await emu.client.v1.prices.create_async(
            params={
                "currency": "usd",
                "unit_amount": 6000,
                "product": product.id,
                "lookup_key": "setup",
            }
        )
    moved = await emu.client.v1.prices.create_async(
        params={
            "currency": "usd",
            "unit_amount": 6000,
            "product": product.id,
            "lookup_key": "setup",
            "transfer_lookup_key": True,
        }
    )
    by_key = await emu.client.v1.prices.list_async(params={"lookup_keys": ["setup"]})
    assert [p.id for p in by_key.data] == [moved.id]
    with pytest.raises(stripe.InvalidRequestError):
        await emu.client.v1.prices.create_async(
            params={
                "currency": "usd",
                "unit_amount": 1,
                "product": product.id,
                "recurring": {"interval": "month", "usage_type": "metered"},
            }
        )
    monthly = await price(emu, 1500, days=None)
    await emu.client.v1.prices.update_async(monthly.id, params={"active": False})
    assert (
        await emu.client.v1.prices.list_async(params={"active": True, "type": "recurring"})
    ).data == []
    customer = await customer_with_card(emu)
    with pytest.raises(stripe.InvalidRequestError):
        await emu.client.v1.subscriptions.create_async(
            params={"customer": customer.id, "items": [{"price": monthly.id}]}
        )
    with pytest.raises(stripe.InvalidRequestError):
        await emu.client.v1.subscriptions.create_async(
            params={"customer": customer.id, "items": [{"price": one_off.id}]}
        )
    assert {"product.created", "price.created", "price.updated"} <= set(await emu.types())


async def test_payment_methods(emu: Emu) -> None:
    customer = await customer_with_card(emu)
    [method] = (await emu.client.v1.customers.payment_methods.list_async(customer.id)).data
    assert method.card is not None and method.card.brand == "visa" and method.card.last4 == "4242"
    with pytest.raises(stripe.CardError):
        await emu.client.v1.payment_methods.attach_async(
            "pm_card_chargeDeclined", params={"customer": customer.id}
        )
    made = await emu.client.v1.payment_methods.create_async(
        params={"type": "card", "card": {"token": "tok_mastercard"}}
    )
    assert made.customer is None and made.card is not None and made.card.brand == "mastercard"
    await emu.client.v1.payment_methods.detach_async(method.id)
    after = await emu.client.v1.customers.retrieve_async(customer.id)
    assert after.invoice_settings.default_payment_method is None
    [detached] = await emu.events(type="payment_method.detached")
    assert detached.data.previous_attributes.to_dict() == {"customer": customer.id}
    assert (await emu.types())[:3] == [
        "customer.created",
        "payment_method.attached",
        "customer.updated",
    ]


async def test_customer_business_and_individual_names(emu: Emu) -> None:
    named = await emu.client.v1.customers.create_async(
        params={"individual_name": "Ada Lovelace", "email": "ada@globex.example"}
    )
    assert (named.individual_name, named.business_name, named.name) == (
        "Ada Lovelace",
        None,
        "Ada Lovelace",
    )
    both = await emu.client.v1.customers.create_async(
        params={"business_name": "Globex", "individual_name": "Ada Lovelace"}
    )
    assert both.name == "Globex"
    updated = await emu.client.v1.customers.update_async(
        both.id, params={"individual_name": "Grace Hopper"}
    )
    assert (updated.individual_name, updated.name) == ("Grace Hopper", "Globex")
