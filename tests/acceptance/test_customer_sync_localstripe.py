"""The two-way customer sync against localstripe, a fake Stripe that is not ours: `sfstripe run` as
a subprocess, the Salesforce-compatible test server, localstripe's signed webhooks and PostgreSQL.

The smaller variant of `test_customer_sync`, for what localstripe supports. What it does not:
- customer `tax_exempt` and `individual_name` (its customers refuse unknown parameters): the
  mapping file here sends the billing contact's name to `metadata.billing_contact` instead;
- customer search (`/v1/customers/search` answers 404): sfstripe lists customers instead;
- `ending_before` on `/v1/events`: the daemon cannot poll it, so webhooks only;
- `request.idempotency_key` on events: sfstripe's own customer updates come back as plain
  `customer.updated` events (their Account fields are unchanged, so nothing is written);
- a clock: no renewals and no retries. A declined card fails a new subscription's first invoice
  without any invoice event (the subscription stays `incomplete`); a SEPA debit failing after
  the fact sends invoice.payment_failed (and localstripe then cancels that subscription);
- invoice `number`, `hosted_invoice_url` and `invoice_pdf`: those Account fields stay empty.

It edits the phone only: an update with part of an address replaces the whole address in
localstripe (as in the emulator), and sfstripe sends only the changed address lines.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio.to_thread

from handlers.customers import fields
from tests.acceptance.customer_sync_support import (
    create_globex,
    customer_settled,
    localstripe_world,
    metric,
    paid_by_visa,
    settled,
)
from tests.acceptance.support import Daemon
from tests.stripe_billing import pay_with

# Only the customer fields localstripe accepts.
MAPPING = """\
version = 1

[billing_contact]
lookup_field = "Billing_Contact__c"
order_by = "CreatedDate"

[[fields]]
stripe = "name"
salesforce = "Account.Name"

[[fields]]
stripe = "phone"
salesforce = "Account.Phone"

[[fields]]
stripe = "address.line1"
salesforce = "Account.BillingStreet"

[[fields]]
stripe = "address.line2"
salesforce = "Account.BillingStreet"

[[fields]]
stripe = "address.city"
salesforce = "Account.BillingCity"

[[fields]]
stripe = "address.postal_code"
salesforce = "Account.BillingPostalCode"

[[fields]]
stripe = "address.country"
salesforce = "Account.BillingCountry"

[[fields]]
stripe = "email"
salesforce = "BillingContact.Email"

[[fields]]
stripe = "metadata.billing_contact"
salesforce = "BillingContact.Name"
"""


async def test_accounts_become_localstripe_customers_and_billing_comes_back(
    tmp_path: Path, workdir: Path, fresh_dsn: str, daemons: Callable[..., Daemon]
) -> None:
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(MAPPING)
    async with localstripe_world(tmp_path, fresh_dsn, SFSTRIPE_MAPPING_FILE=str(mapping)) as world:
        sf, stripe = world.sf, world.stripe
        daemon = daemons(world.env)
        await anyio.to_thread.run_sync(daemon.wait_ready)

        account = await create_globex(sf)
        customer = await customer_settled(
            world,
            account,
            name="Globex GmbH",
            phone="+49 30 1234",
            email="ada@globex.example",
            address={
                "line1": "Unter den Linden 1",
                "line2": "Haus B",
                "city": "Berlin",
                "postal_code": "10117",
                "country": "DE",
            },
            metadata={"sf_account_id": account, "billing_contact": "Ada Lovelace"},
        )
        await settled(world, account, **{fields.CUSTOMER_ID: customer.id})

        # An edit follows.
        await sf.edit_record("Account", {"Phone": "+49 30 9999"}, record_id=account)
        await customer_settled(world, account, phone="+49 30 9999", email="ada@globex.example")

        # localstripe collects: a card, a plan subscription, a paid invoice.
        card = await stripe.v1.payment_methods.retrieve_async("pm_card_visa")
        await pay_with(stripe, customer.id, card.id)
        plan = await stripe.v1.plans.create_async(
            params={
                "amount": 1250,
                "currency": "eur",
                "interval": "month",
                "product": {"name": "Seats"},
            }
        )
        subscription = await stripe.v1.subscriptions.create_async(
            params={"customer": customer.id, "items": [{"plan": plan.id, "quantity": 4}]}
        )
        assert subscription.status == "active"
        paid = await paid_by_visa(world, account, 50.0, "EUR")
        assert paid[fields.PAYMENT_METHOD_EXPIRY] == "12/2030"
        assert not paid[fields.NEXT_PAYMENT_ATTEMPT]

        # A declined card: a second subscription's first payment fails and leaves it
        # `incomplete` (localstripe sends no invoice.payment_failed for it): past due.
        declined = await stripe.v1.payment_methods.retrieve_async("pm_card_chargeCustomerFail")
        await pay_with(stripe, customer.id, declined.id)
        incomplete = await stripe.v1.subscriptions.create_async(
            params={
                "customer": customer.id,
                "items": [{"plan": plan.id, "quantity": 2}],
                "payment_behavior": "allow_incomplete",
            }
        )
        assert incomplete.status == "incomplete"
        await settled(
            world,
            account,
            **{
                fields.BILLING_STATUS: "past_due",
                fields.INVOICE_STATUS: "paid",
                fields.PAYMENT_METHOD_LAST4: "0341",
            },
        )

        # A SEPA debit that fails after the fact: invoice.payment_failed, and the account shows
        # the open invoice in dunning (localstripe then cancels that subscription).
        sepa = await stripe.v1.payment_methods.create_async(
            params={"type": "sepa_debit", "sepa_debit": {"iban": "DE62370400440532013001"}}
        )
        await pay_with(stripe, customer.id, sepa.id)
        await stripe.v1.subscriptions.create_async(
            params={"customer": customer.id, "items": [{"plan": plan.id, "quantity": 3}]}
        )
        dunning = await settled(
            world,
            account,
            **{
                fields.BILLING_STATUS: "past_due",
                fields.INVOICE_STATUS: "open",
                fields.PAYMENT_METHOD_LAST4: None,
            },
        )
        assert dunning[fields.INVOICE_AMOUNT_DUE] == 37.5
        assert dunning[fields.DUNNING_ATTEMPTS] == 1
        assert dunning[fields.NEXT_PAYMENT_ATTEMPT]
        assert dunning[fields.PAYMENT_METHOD_BRAND] is None

        # Every event came by webhook, verified; once quiet, nothing is written on either side.
        await anyio.sleep(3)
        published = await world.published()
        written = metric(daemon, "sfstripe_sync_fields_written_total")
        await anyio.sleep(4)
        assert await world.published() == published
        assert metric(daemon, "sfstripe_sync_fields_written_total") == written
        assert metric(daemon, "sfstripe_dead_letters_total") == 0
        assert metric(daemon, "sfstripe_webhook_rejections_total") == 0
        log = world.localstripe.log()
        assert log.count("successfully delivered") >= 10, log
        assert "failed with response code" not in log, log
        assert [c.id for c in await world.customers_of(account)] == [customer.id]
        assert await anyio.to_thread.run_sync(daemon.stop) == 0
