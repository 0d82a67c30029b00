"""Stripe's REST conventions: keys, form encoding, errors, idempotency, expand, lists, faults."""

from __future__ import annotations

import time

import pytest
import stripe

from emulators.stripe.errors import StripeError
from emulators.stripe.forms import parse_pairs
from tests.emulator.conftest import Emu


def test_nested_form_keys() -> None:
    params = parse_pairs(
        [
            ("items[0][price]", "price_a"),
            ("items[0][quantity]", "2"),
            ("items[1][price]", "price_b"),
            ("metadata[0]", "kept as a key"),
            ("expand[]", "customer"),
            ("expand[]", "latest_invoice"),
            ("address[line1]", ""),
        ]
    )
    assert params == {
        "items": [{"price": "price_a", "quantity": "2"}, {"price": "price_b"}],
        "metadata": {"0": "kept as a key"},
        "expand": ["customer", "latest_invoice"],
        "address": {"line1": ""},
    }
    with pytest.raises(StripeError):
        parse_pairs([("a[b", "x")])


async def test_keys_are_checked(emu: Emu) -> None:
    async with emu.http.get(f"{emu.url}/v1/customers") as answer:
        assert answer.status == 401
        body = await answer.json()
        assert body["error"]["type"] == "invalid_request_error"
        assert "did not provide an API key" in body["error"]["message"]
    live = emu.sdk("sk_live_nope")
    with pytest.raises(stripe.AuthenticationError):
        await live.v1.customers.list_async()
    restricted = emu.sdk("rk_test_restricted")
    assert (await restricted.v1.customers.list_async()).data == []


async def test_errors_have_stripes_shape(emu: Emu) -> None:
    with pytest.raises(stripe.InvalidRequestError) as missing:
        await emu.client.v1.customers.retrieve_async("cus_nope")
    assert missing.value.http_status == 404
    assert missing.value.code == "resource_missing"
    assert missing.value.param == "id"
    assert "No such customer: 'cus_nope'" in str(missing.value.user_message)
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        await emu.client.raw_request_async("get", "/v1/nothing_here")
    assert unknown.value.http_status == 404
    with pytest.raises(stripe.InvalidRequestError) as bad:
        await emu.client.v1.customers.list_async(params={"limit": 101})
    assert bad.value.param == "limit"


async def test_idempotency_replays_and_refuses_other_parameters(emu: Emu) -> None:
    options: stripe.RequestOptions = {"idempotency_key": "sf-1-001-create"}
    first = await emu.client.v1.customers.create_async(
        params={"email": "a@example.com"}, options=options
    )
    again = await emu.client.v1.customers.create_async(
        params={"email": "a@example.com"}, options=options
    )
    assert again.id == first.id
    assert len((await emu.client.v1.customers.list_async()).data) == 1
    with pytest.raises(stripe.IdempotencyError):
        await emu.client.v1.customers.create_async(
            params={"email": "b@example.com"}, options=options
        )
    # Validation failures are not stored: the key can be used again once the call is right.
    fixed: stripe.RequestOptions = {"idempotency_key": "k2"}
    with pytest.raises(stripe.InvalidRequestError):
        await emu.client.v1.prices.create_async(params={"currency": "usd"}, options=fixed)
    product = await emu.client.v1.products.create_async(params={"name": "P"})
    price = await emu.client.v1.prices.create_async(
        params={"currency": "usd", "product": product.id, "unit_amount": 100}, options=fixed
    )
    assert price.unit_amount == 100
    # Keys expire after 24 hours.
    await emu.advance(24 * 3600)
    fresh = await emu.client.v1.customers.create_async(
        params={"email": "b@example.com"}, options=options
    )
    assert fresh.id != first.id


async def test_idempotent_events_carry_the_key(emu: Emu) -> None:
    options: stripe.RequestOptions = {"idempotency_key": "sf-42-001-create"}
    customer = await emu.client.v1.customers.create_async(params={"name": "A"}, options=options)
    [event] = await emu.events(type="customer.created")
    assert event.data.object["id"] == customer.id
    assert event.request is not None
    assert event.request.idempotency_key == "sf-42-001-create"
    assert event.request.id is not None and event.request.id.startswith("req_")


async def test_expand(emu: Emu) -> None:
    customer = await emu.client.v1.customers.create_async(params={"name": "A"})
    method = await emu.client.v1.payment_methods.attach_async(
        "pm_card_visa", params={"customer": customer.id}
    )
    await emu.client.v1.customers.update_async(
        customer.id, params={"invoice_settings": {"default_payment_method": method.id}}
    )
    shown = await emu.client.v1.customers.retrieve_async(
        customer.id, params={"expand": ["invoice_settings.default_payment_method"]}
    )
    default = shown.invoice_settings.default_payment_method
    assert isinstance(default, stripe.PaymentMethod)
    assert default.card is not None and default.card.last4 == "4242"
    listed = await emu.client.v1.payment_methods.list_async(
        params={"customer": customer.id, "expand": ["data.customer"]}
    )
    assert isinstance(listed.data[0].customer, stripe.Customer)


async def test_lists_page_with_cursors(emu: Emu) -> None:
    ids = [
        (await emu.client.v1.customers.create_async(params={"name": f"c{i}"})).id for i in range(5)
    ]
    newest_first = list(reversed(ids))
    first = await emu.client.v1.customers.list_async(params={"limit": 2})
    assert [c.id for c in first.data] == newest_first[:2] and first.has_more
    second = await emu.client.v1.customers.list_async(
        params={"limit": 2, "starting_after": first.data[-1].id}
    )
    assert [c.id for c in second.data] == newest_first[2:4] and second.has_more
    back = await emu.client.v1.customers.list_async(
        params={"limit": 2, "ending_before": second.data[0].id}
    )
    assert [c.id for c in back.data] == newest_first[:2] and not back.has_more
    every = [c.id async for c in first.auto_paging_iter()]
    assert every == newest_first


async def test_faults(emu: Emu) -> None:
    await emu.control("faults", {"kind": "rate_limit", "path": "/v1/customers", "count": 1})
    with pytest.raises(stripe.RateLimitError) as limited:
        await emu.client.v1.customers.list_async()
    assert limited.value.headers is not None
    assert limited.value.headers.get("stripe-should-retry") == "true"
    assert (await emu.client.v1.customers.list_async()).data == []
    await emu.control("faults", {"kind": "server_error", "status": 503, "count": 1})
    with pytest.raises(stripe.APIError):
        await emu.client.v1.customers.list_async()
    # The SDK's own retries honour Stripe-Should-Retry and get through.
    retrying = emu.sdk(retries=2)
    await emu.control("faults", {"kind": "rate_limit", "count": 1})
    assert (await retrying.v1.customers.list_async()).data == []
    await emu.control("faults", {"kind": "latency", "latency_ms": 200, "count": 1})
    started = time.monotonic()
    await emu.client.v1.customers.list_async()
    assert time.monotonic() - started >= 0.2
    async with emu.http.delete(f"{emu.url}/_emulator/faults") as answer:
        assert answer.status == 200
