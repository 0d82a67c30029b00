"""Events (`GET /v1/events` semantics, previous_attributes, request ids, retention) and signed,
retried webhook deliveries."""

from __future__ import annotations

import asyncio
import json

import pytest
import stripe

from tests.emulator.conftest import Emu, Receiver


async def test_events_newest_first_with_cursors_and_filters(emu: Emu) -> None:
    customers = []
    for i in range(4):
        customers.append(await emu.client.v1.customers.create_async(params={"name": f"c{i}"}))
        await emu.advance(10)
    await emu.client.v1.customers.update_async(customers[0].id, params={"email": "x@example.com"})
    events = await emu.events()
    assert [e.type for e in events] == ["customer.updated"] + ["customer.created"] * 4
    assert [e.created for e in events] == sorted((e.created for e in events), reverse=True)
    ids = [e.id for e in events]
    older = await emu.client.v1.events.list_async(params={"limit": 2, "starting_after": ids[1]})
    assert [e.id for e in older.data] == ids[2:4] and older.has_more
    newer = await emu.client.v1.events.list_async(params={"limit": 2, "ending_before": ids[4]})
    assert [e.id for e in newer.data] == ids[2:4] and newer.has_more
    catch_up = [e.id async for e in newer.auto_paging_iter()]
    assert catch_up == list(reversed(ids[:4]))  # ending_before pages walk oldest -> newest
    assert [e.type for e in await emu.events(type="customer.*")] == [e.type for e in events]
    assert await emu.events(type="invoice.*") == []
    only = await emu.events(types=["customer.updated"])
    assert [e.id for e in only] == [ids[0]]
    assert [e.id for e in await emu.events(created={"gte": events[2].created})] == ids[:3]
    with pytest.raises(stripe.InvalidRequestError):
        await emu.client.v1.events.list_async(params={"type": "a.*", "types": ["b"]})
    with pytest.raises(stripe.InvalidRequestError) as missing:
        await emu.client.v1.events.list_async(params={"starting_after": "evt_nope"})
    assert missing.value.code == "resource_missing"


async def test_previous_attributes_and_request(emu: Emu) -> None:
    customer = await emu.client.v1.customers.create_async(
        params={
            "email": "old@example.com",
            "address": {"line1": "1 Old St", "city": "Springfield", "country": "US"},
            "metadata": {"sf_account_id": "001A"},
        }
    )
    await emu.client.v1.customers.update_async(
        customer.id,
        params={
            "email": "new@example.com",
            "address": {"line1": "2 New St", "city": "Springfield", "country": "US"},
        },
        options={"idempotency_key": "sf-9-001A-update"},
    )
    [updated] = await emu.events(type="customer.updated")
    assert updated.data.object["email"] == "new@example.com"
    previous = updated.data.previous_attributes
    assert previous is not None
    assert previous.to_dict() == {"email": "old@example.com", "address": {"line1": "1 Old St"}}
    assert updated.request is not None and updated.request.idempotency_key == "sf-9-001A-update"
    [created] = await emu.events(type="customer.created")
    assert "previous_attributes" not in created.data.to_dict()
    assert created.api_version == stripe.api_version


async def test_thirty_day_retention(emu: Emu) -> None:
    customer = await emu.client.v1.customers.create_async(params={"name": "old"})
    [old] = await emu.events()
    await emu.advance(31 * 86400)
    await emu.client.v1.customers.update_async(customer.id, params={"name": "new"})
    assert [e.type for e in await emu.events()] == ["customer.updated"]
    with pytest.raises(stripe.InvalidRequestError):
        await emu.client.v1.events.retrieve_async(old.id)
    with pytest.raises(stripe.InvalidRequestError):
        await emu.client.v1.events.list_async(params={"ending_before": old.id})


async def _endpoint(emu: Emu, receiver: Receiver, events: list[str] | None = None) -> str:
    endpoint = await emu.client.v1.webhook_endpoints.create_async(
        params={"url": receiver.url, "enabled_events": events or ["*"]}
    )
    assert endpoint.secret is not None and endpoint.secret.startswith("whsec_")
    again = await emu.client.v1.webhook_endpoints.retrieve_async(endpoint.id)
    assert "secret" not in again.to_dict()
    return endpoint.secret


async def test_webhooks_are_signed_and_verify(emu: Emu, receiver: Receiver) -> None:
    secret = await _endpoint(emu, receiver)
    customer = await emu.client.v1.customers.create_async(params={"name": "A"})
    await emu.server.webhooks.settled()
    [body] = receiver.bodies
    event = stripe.Webhook.construct_event(body, receiver.signatures[0], secret)
    assert event.type == "customer.created"
    assert event.data.object["id"] == customer.id
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body, receiver.signatures[0], "whsec_other")
    listed = await emu.client.v1.events.retrieve_async(event.id)
    assert listed.pending_webhooks == 0


async def test_endpoint_receives_only_enabled_events(emu: Emu, receiver: Receiver) -> None:
    await _endpoint(emu, receiver, ["customer.updated"])
    customer = await emu.client.v1.customers.create_async(params={"name": "A"})
    await emu.client.v1.customers.update_async(customer.id, params={"name": "B"})
    await emu.server.webhooks.settled()
    assert [event["type"] for event in receiver.events()] == ["customer.updated"]


async def test_failed_deliveries_are_retried(emu: Emu, receiver: Receiver) -> None:
    await emu.control("config", {"webhooks": {"retry_delays": [0.05, 0.05]}})
    secret = await _endpoint(emu, receiver)
    receiver.refuse_next = 2
    await emu.client.v1.customers.create_async(params={"name": "A"})
    [pending] = await emu.events()
    assert pending.pending_webhooks == 1
    assert [e.id for e in await emu.events(delivery_success=False)] == [pending.id]
    await emu.server.webhooks.settled()
    assert len(receiver.bodies) == 1
    stripe.Webhook.construct_event(receiver.bodies[0], receiver.signatures[0], secret)
    attempts = await emu.http.get(f"{emu.url}/_emulator/webhook_attempts")
    statuses = [a["status"] for a in (await attempts.json())["data"]]
    assert statuses == [500, 500, 200]
    assert await emu.events(delivery_success=False) == []


async def test_retries_give_up(emu: Emu, receiver: Receiver) -> None:
    await emu.control("config", {"webhooks": {"retry_delays": [0.01]}})
    await _endpoint(emu, receiver)
    receiver.refuse_next = 5
    await emu.client.v1.customers.create_async(params={"name": "A"})
    await emu.server.webhooks.settled()
    assert receiver.bodies == []
    assert len(await emu.events(delivery_success=False)) == 1


async def test_shuffled_and_duplicated_delivery(emu: Emu, receiver: Receiver) -> None:
    await emu.control("config", {"webhooks": {"shuffle": True, "duplicate_rate": 1.0, "seed": 7}})
    await _endpoint(emu, receiver)
    for i in range(8):
        await emu.client.v1.customers.create_async(params={"name": f"c{i}"})
    await emu.server.webhooks.settled()
    await asyncio.sleep(0.1)
    received = [event["id"] for event in receiver.events()]
    created_order = [e.id for e in reversed(await emu.events())]
    assert sorted(received) == sorted(created_order * 2)
    once = list(dict.fromkeys(received))
    assert once != created_order  # seed 7 sends them out of order


async def test_settle_over_http(emu: Emu, receiver: Receiver) -> None:
    await _endpoint(emu, receiver)
    await emu.client.v1.customers.create_async(params={"name": "A"})
    assert (await emu.control("webhooks/settle", {"timeout": 5})) == {"settled": True}
    assert json.loads(receiver.bodies[0])["type"] == "customer.created"
