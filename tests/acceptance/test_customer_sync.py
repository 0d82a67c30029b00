"""The two-way customer sync end to end: `sfstripe run` as a subprocess against the
Salesforce-compatible test server (OAuth, REST that emits CDC, CometD), the Stripe Billing emulator
(webhooks, events, its clock) and PostgreSQL."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio.to_thread

from handlers.customers import fields
from tests.acceptance.customer_sync_support import (
    OWN_ORIGIN,
    SyncWorld,
    create_globex,
    customer_settled,
    metric,
    paid_by_visa,
    settled,
    sync_world,
)
from tests.acceptance.support import Daemon, run_cli
from tests.stripe_billing import pay_with, subscribe
from tests.waiting import wait_until

DAY = 24 * 3600


async def test_accounts_and_contacts_become_customers_and_billing_comes_back(
    tmp_path: Path, workdir: Path, fresh_dsn: str, daemons: Callable[..., Daemon]
) -> None:
    async with sync_world(tmp_path, fresh_dsn) as world:
        sf = world.sf
        daemon = daemons(world.env)
        await anyio.to_thread.run_sync(daemon.wait_ready)

        account = await create_globex(sf)
        customer = await customer_settled(
            world,
            account,
            name="Globex GmbH",
            phone="+49 30 1234",
            email="ada@globex.example",
            individual_name="Ada Lovelace",
            **{
                "address.line1": "Unter den Linden 1",
                "address.line2": "Haus B",
                "address.country": "DE",
                "tax_exempt": "none",
            },
        )
        await settled(world, account, **{fields.CUSTOMER_ID: customer.id})

        # An edit follows; only the changed field is sent.
        await sf.edit_record("Account", {"Phone": "+49 30 9999"}, record_id=account)
        await customer_settled(world, account, phone="+49 30 9999")
        # Stripe takes an address whole: one changed part keeps the others.
        await sf.edit_record("Account", {"BillingCity": "Potsdam"}, record_id=account)
        await customer_settled(
            world,
            account,
            **{
                "address.city": "Potsdam",
                "address.line1": "Unter den Linden 1",
                "address.postal_code": "10117",
                "address.country": "DE",
            },
        )

        # Stripe collects: a card, a subscription, a paid invoice.
        await pay_with(world.stripe, customer.id, "pm_card_visa")
        await subscribe(
            world.stripe, customer.id, product="Seats", unit_amount=1250, currency="eur", quantity=4
        )
        paid = await paid_by_visa(world, account, 50.0, "EUR")
        assert re.fullmatch(r"\d{2}/\d{4}", paid[fields.PAYMENT_METHOD_EXPIRY])
        assert paid[fields.INVOICE_URL].startswith("http")

        # The next renewal fails: dunning.
        await pay_with(world.stripe, customer.id, "pm_card_chargeCustomerFail")
        world.emulator.advance(31 * DAY)
        dunning = await settled(
            world,
            account,
            **{fields.BILLING_STATUS: "past_due", fields.INVOICE_STATUS: "open"},
        )
        assert dunning[fields.DUNNING_ATTEMPTS] >= 1
        assert dunning[fields.NEXT_PAYMENT_ATTEMPT]
        assert dunning[fields.INVOICE_NUMBER] != paid[fields.INVOICE_NUMBER]

        # A Flow changes the phone in the same transaction as one of sfstripe's own writes
        # coming back: the echo is dropped, the Flow's change is applied.
        echoes = metric(daemon, "sfstripe_echoes_suppressed_total", source="salesforce")
        await sf.edit_record("Account", {"Phone": "+49 30 5555"}, record_id=account, emit=False)
        await sf.publish(
            "Account",
            record_ids=[account],
            fields={fields.BILLING_STATUS: "past_due", "Phone": "+49 30 5555"},
            changed_fields=[fields.BILLING_STATUS, "Phone", "LastModifiedDate"],
            changeOrigin=OWN_ORIGIN,
        )
        await customer_settled(world, account, phone="+49 30 5555")
        assert metric(daemon, "sfstripe_echoes_suppressed_total", source="salesforce") > echoes

        # Once quiet, nothing is written on either side.
        await anyio.sleep(3)
        published = await world.published()
        written = metric(daemon, "sfstripe_sync_fields_written_total")
        await anyio.sleep(4)
        assert await world.published() == published
        assert metric(daemon, "sfstripe_sync_fields_written_total") == written
        assert metric(daemon, "sfstripe_dead_letters_total") == 0
        assert await anyio.to_thread.run_sync(daemon.stop) == 0


async def test_a_test_key_with_a_production_org_is_refused(
    tmp_path: Path, workdir: Path, fresh_dsn: str, daemons: Callable[..., Daemon]
) -> None:
    async with sync_world(tmp_path, fresh_dsn) as world:
        await world.sf.set_config(isSandbox=False, organizationType="Enterprise Edition")
        result = await anyio.to_thread.run_sync(
            lambda: run_cli("run", env=world.env, cwd=workdir, timeout=60)
        )
        assert result.returncode == 1
        assert "a Stripe test key with a production org" in result.stderr
        assert "SFSTRIPE_ALLOW_MIXED_MODES" in result.stderr
        replay = await anyio.to_thread.run_sync(
            lambda: run_cli("replay", "--from-offset", "1", env=world.env, cwd=workdir)
        )
        assert replay.returncode == 1
        assert "a Stripe test key with a production org" in replay.stderr
        daemon = daemons({**world.env, "SFSTRIPE_ALLOW_MIXED_MODES": "true"})
        await anyio.to_thread.run_sync(daemon.wait_ready)
        assert daemon.logged("mixed_modes_allowed")
        assert await anyio.to_thread.run_sync(daemon.stop) == 0


async def one_customer_each(world: SyncWorld, accounts: list[str]) -> dict[str, str]:
    """Wait until every account has exactly one Stripe customer and shows its id."""

    async def done() -> bool:
        for account in accounts:
            customers = await world.customers_of(account)
            assert len(customers) <= 1, f"{account} has {len(customers)} customers"
            if not customers:
                return False
            if (await world.account(account)).get(fields.CUSTOMER_ID) != customers[0].id:
                return False
        return True

    await wait_until(done, within=60)
    return {account: (await world.customers_of(account))[0].id for account in accounts}


def backfill(
    world: SyncWorld, workdir: Path, *where: str, create_matched: bool = False
) -> dict[str, Any]:
    args = [arg for pair in where for arg in ("--where", pair)]
    args += ["--create-matched"] if create_matched else []
    result = run_cli("backfill", "--object", "Account", *args, env=world.env, cwd=workdir)
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


async def test_a_kill_mid_flight_and_backfills_neither_lose_nor_double(
    tmp_path: Path, workdir: Path, fresh_dsn: str, daemons: Callable[..., Daemon]
) -> None:
    async with sync_world(tmp_path, fresh_dsn) as world:
        sf = world.sf
        # Accounts from before sfstripe was connected (no change events for them).
        old = []
        for n, kind in enumerate(["Customer", "Customer", "Prospect"]):
            record = await sf.edit_record("Account", {"Name": f"Old {n}", "Type": kind}, emit=False)
            old.append(record["id"])
            await sf.edit_record(
                "Contact",
                {
                    "LastName": f"Payer {n}",
                    "Email": f"payer{n}@old.example",
                    "AccountId": record["id"],
                },
                emit=False,
            )
        # Before sfstripe is connected, Stripe sends it nothing.
        [endpoint] = (await world.stripe.v1.webhook_endpoints.list_async()).data
        await world.stripe.v1.webhook_endpoints.update_async(endpoint.id, params={"disabled": True})
        # One of them was already billed by hand, with the link in place (the Id pasted in its
        # 15-character form, as the Salesforce UI shows it): it is adopted.
        adopted = await world.stripe.v1.customers.create_async(
            params={"name": "Old 1", "metadata": {"sf_account_id": old[1][:15]}}
        )
        # ... and pays a subscription that sends no more events once sfstripe is connected.
        await pay_with(world.stripe, adopted.id, "pm_card_visa")
        await subscribe(
            world.stripe, adopted.id, product="Support", unit_amount=9900, interval="year"
        )
        await world.stripe.v1.webhook_endpoints.update_async(
            endpoint.id, params={"disabled": False}
        )
        # Another customer looks like Old 0 by email but carries no link: reported, not linked.
        lookalike = await world.stripe.v1.customers.create_async(
            params={"email": "payer0@old.example"}
        )

        daemon = daemons(world.env)
        await anyio.to_thread.run_sync(daemon.wait_ready)
        new = [(await sf.edit_record("Account", {"Name": f"New {n}"}))["id"] for n in range(6)]

        async def some_done() -> bool:
            return any([await world.customers_of(account) for account in new])

        await wait_until(some_done, within=40)
        daemon.kill()  # SIGKILL in the middle of it
        again = daemons(world.env)
        await anyio.to_thread.run_sync(again.wait_ready)
        await one_customer_each(world, new)

        subset = await anyio.to_thread.run_sync(backfill, world, workdir, "Type=Customer")
        assert subset["accounts"] == 2
        assert subset["unlinked_stripe_customers"] == [
            {"stripe_customer": lookalike.id, "email": "payer0@old.example", "account": old[0]}
        ]
        assert subset["held_back"] == [old[0]]  # a person decides about the look-alike
        linked = await one_customer_each(world, old[1:2])
        assert linked[old[1]] == adopted.id
        # Its billing so far is read from Stripe once it is adopted.
        await settled(
            world,
            old[1],
            **{
                fields.BILLING_STATUS: "current",
                fields.INVOICE_STATUS: "paid",
                fields.INVOICE_AMOUNT_DUE: 99.0,
                fields.PAYMENT_METHOD_LAST4: "4242",
            },
        )
        assert await world.customers_of(old[0]) == []
        assert await world.customers_of(old[2]) == []

        # The person decides the look-alike is another customer: create Old 0's anyway.
        everything = await anyio.to_thread.run_sync(
            lambda: backfill(world, workdir, create_matched=True)
        )
        assert everything["accounts"] == 9
        assert everything["held_back"] == []
        await one_customer_each(world, old + new)

        async def quiet_rerun() -> bool:
            rerun = await anyio.to_thread.run_sync(
                lambda: backfill(world, workdir, create_matched=True)
            )
            return bool(rerun["snapshots_stored"] == 0 and rerun["already_stored"] == 9)

        await wait_until(quiet_rerun, within=40)
        customers = await world.stripe.v1.customers.list_async(params={"limit": 100})
        assert len(customers.data) == 9 + 1  # each account once, plus the unlinked look-alike
        assert metric(again, "sfstripe_dead_letters_total") == 0
        assert await anyio.to_thread.run_sync(again.stop) == 0
