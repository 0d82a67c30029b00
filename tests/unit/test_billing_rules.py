"""The billing rules: what is kept of each Stripe object (never card data beyond brand, last 4
and expiry), which snapshot wins when events arrive out of order or tie, and the Account fields
that follow. Objects are the captured Stripe samples (API 2025-03-31.basil)."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from handlers.customers import fields
from handlers.customers.billing_rules import (
    Decision,
    Tracked,
    account_fields,
    decide,
    kind_of,
    major_units,
    resolve_refetched,
    tracked,
)
from handlers.customers.mapping import (
    ADDRESS_TARGETS,
    COUNTRY,
    TAX_EXEMPT,
    TEXT_TARGETS,
    stripe_value,
)
from tests.stripe_payloads import (
    AUTOMATIC,
    customer_object,
    envelope,
    invoice_object,
    payment_method_detached,
    payment_method_object,
    sample,
    subscription_object,
)

Json = dict[str, Any]

CUS = "cus_TEST7Qx2LmN4pZ"
SUB = "sub_TEST1Kf9Wc3Rt8"
INVOICE = "in_TEST5Xc2Vb9Nm"
PM = "pm_TEST4Gw9Vr2Nc"

# One subscription invoice's life, as the samples record it (event `created`, Unix seconds).
DRAFTED = 1750377851
FINALIZED = 1750381537
FAILED = 1750666360
PAID = 1750924531


def track(event: Json) -> Tracked:
    """What the handler keeps of an event's object."""
    obj = event["data"]["object"]
    kind = kind_of(obj["object"])
    assert kind is not None
    previous = event["data"].get("previous_attributes", {}).get("customer")
    kept = tracked(
        kind, obj, event["created"], event_type=event["type"], previous_customer=previous
    )
    assert kept is not None
    return kept


def invoice_event(type_: str, status: str, at: int, **changes: Any) -> Json:
    """An invoice event at `at`; `changes` overwrite the invoice's own fields."""
    obj = invoice_object(CUS, INVOICE, status=status, subscription_id=SUB)
    if status == "paid":
        changes = {"attempt_count": 3, "next_payment_attempt": None, **changes}
    obj.update(changes)
    return envelope(type_, obj, created=at, request=AUTOMATIC)


def invoice(status: str, at: int, **changes: Any) -> Tracked:
    return track(invoice_event(f"invoice.{status}", status, at, **changes))


def subscription(status: str, created: int, subscription_id: str = SUB) -> Tracked:
    obj = subscription_object(CUS, subscription_id, status=status)
    type_ = "deleted" if status == "canceled" else "updated"
    return track(envelope(f"customer.subscription.{type_}", obj, created=created))


def customer(created: int = 1748943902, **changes: Any) -> Tracked:
    obj = customer_object(CUS, sf_account_id="001xx000003DGb2AAG")
    obj.update(changes)
    return track(envelope("customer.updated", obj, created=created))


def with_default(default: str | None) -> Tracked:
    obj = customer_object(CUS)
    obj["invoice_settings"]["default_payment_method"] = default
    return track(envelope("customer.updated", obj, created=1748943902))


def card(created: int = 1750782009, payment_method_id: str = PM) -> Tracked:
    obj = payment_method_object(CUS, payment_method_id)
    return track(envelope("payment_method.attached", obj, created=created))


# ---------------------------------------------------------------------------------------------
# kinds and kept fields


@pytest.mark.parametrize(
    ("object_type", "kind"),
    [
        ("invoice", "invoice"),
        ("subscription", "subscription"),
        ("customer", "customer"),
        ("payment_method", "payment_method"),
        ("charge", None),
        ("subscription_item", None),
        ("credit_note", None),
        ("event", None),
    ],
)
def test_kind_of_names_only_the_four_billing_objects(object_type: str, kind: str | None) -> None:
    assert kind_of(object_type) == kind


def test_invoice_keeps_only_the_account_fields_sources() -> None:
    event = sample("invoice_paid")
    kept = track(event)
    assert (kept.object_id, kept.kind, kept.stripe_customer) == (INVOICE, "invoice", CUS)
    assert (kept.event_created, kept.status) == (PAID, "paid")
    assert kept.body == {
        "number": "GLBX7Q2A-0004",
        "status": "paid",
        "amount_due": 12000,
        "currency": "usd",
        "hosted_invoice_url": "https://invoice.stripe.com/i/acct_TESTxxxxxxxx/test_in_TEST5Xc2Vb9Nm",
        "invoice_pdf": "https://pay.stripe.com/invoice/acct_TESTxxxxxxxx/test_in_TEST5Xc2Vb9Nm/pdf",
        "attempt_count": 3,
        "next_payment_attempt": None,
        "created": DRAFTED,
        "status_transitions": {
            "finalized_at": FINALIZED,
            "paid_at": PAID,
            "voided_at": None,
            "marked_uncollectible_at": None,
        },
    }


def test_kept_body_is_a_copy_not_a_view_of_the_event() -> None:
    event = sample("invoice_paid")
    kept = track(event)
    event["data"]["object"]["status_transitions"]["paid_at"] = None
    assert kept.body["status_transitions"]["paid_at"] == PAID
    event = sample("customer_updated")
    kept = track(event)
    event["data"]["object"]["address"]["city"] = "Springfield"
    event["data"]["object"]["metadata"]["sf_account_id"] = "001xx000003DGb3AAG"
    assert kept.body["address"]["city"] == "Shelbyville"
    assert kept.body["metadata"] == {"sf_account_id": "001xx000003DGb2AAG"}


def test_subscription_keeps_status_and_dates() -> None:
    kept = track(sample("subscription_updated_quantity"))
    assert (kept.object_id, kept.stripe_customer, kept.status) == (SUB, CUS, "active")
    assert kept.body == {"status": "active", "created": 1737331200, "canceled_at": None}


def test_customer_keeps_contact_fields_and_the_default_payment_method_id() -> None:
    kept = track(sample("customer_updated"))
    assert (kept.object_id, kept.stripe_customer, kept.status) == (CUS, CUS, None)
    assert kept.body == {
        "default_payment_method": PM,
        "email": "billing@globex.example.com",
        "name": "Globex Test Holdings",
        "phone": "+15550199",
        "address": {
            "city": "Shelbyville",
            "country": "US",
            "line1": "742 Evergreen Terrace",
            "line2": None,
            "postal_code": "62565",
            "state": "IL",
        },
        "tax_exempt": "none",
        "metadata": {"sf_account_id": "001xx000003DGb2AAG"},
        "created": 1736942400,
        "individual_name": None,
        "business_name": None,
        "description": None,
    }


def test_customer_keeps_every_field_the_mapping_can_make_stripe_owned() -> None:
    obj = customer_object(CUS)
    obj.update(
        individual_name="Ada Lovelace",
        business_name="Globex Corporation",
        description="Key account",
    )
    kept = track(envelope("customer.updated", obj))
    targets = {*TEXT_TARGETS, *ADDRESS_TARGETS, COUNTRY, TAX_EXEMPT, "metadata.sf_account_id"}
    for target in sorted(targets):
        assert stripe_value(kept.body, target) == stripe_value(obj, target), target


def test_an_expanded_default_payment_method_is_kept_as_its_id() -> None:
    obj = customer_object(CUS)
    obj["invoice_settings"]["default_payment_method"] = payment_method_object(CUS, PM)
    kept = track(envelope("customer.updated", obj))
    assert kept.body["default_payment_method"] == PM


def test_a_deleted_customer_is_deleted_from_its_event_or_its_refetch() -> None:
    event = envelope("customer.deleted", customer_object(CUS), created=1751000000)
    assert track(event).status == "deleted"
    refetched = tracked("customer", {"id": CUS, "object": "customer", "deleted": True}, 1751000100)
    assert refetched is not None
    assert (refetched.stripe_customer, refetched.status) == (CUS, "deleted")
    assert customer().status is None


def test_a_card_keeps_brand_last4_and_expiry_and_nothing_else() -> None:
    event = sample("payment_method_attached")
    kept = track(event)
    assert (kept.object_id, kept.stripe_customer, kept.status) == (PM, CUS, None)
    assert kept.body == {
        "type": "card",
        "created": 1750782006,
        "card": {"brand": "visa", "last4": "4242", "exp_month": 9, "exp_year": 2029},
    }
    stored = msgspec.json.encode(kept).decode()
    full = event["data"]["object"]
    for secret in (
        full["card"]["fingerprint"],
        full["card"]["funding"],
        full["billing_details"]["email"],
        full["billing_details"]["address"]["line1"],
        "networks",
        "checks",
        "wallet",
        "display_brand",
        "country",
    ):
        assert secret not in stored


def test_other_payment_method_types_keep_no_account_details() -> None:
    obj = payment_method_object(CUS, "pm_TESTsepa1Qw2Er")
    del obj["card"]
    obj.update(
        type="sepa_debit",
        sepa_debit={
            "bank_code": "37040044",
            "branch_code": "",
            "country": "DE",
            "fingerprint": "TESTfpSepa9Zx8",
            "last4": "3000",
        },
    )
    kept = track(envelope("payment_method.attached", obj))
    assert kept.body == {"type": "sepa_debit", "created": 1750782006}


def test_a_detached_payment_method_belongs_to_its_previous_customer() -> None:
    event = payment_method_detached(CUS, payment_method_id=PM)
    assert event["data"]["object"]["customer"] is None
    kept = track(event)
    assert (kept.stripe_customer, kept.status) == (CUS, "detached")
    # Re-fetched after the detach: no customer on the object, none from an event.
    assert tracked("payment_method", event["data"]["object"], event["created"]) is None


def test_an_invoice_preview_without_id_is_not_tracked() -> None:
    preview = invoice_object(CUS, None, status="draft", subscription_id=SUB)
    assert tracked("invoice", preview, DRAFTED, event_type="invoice.upcoming") is None


# ---------------------------------------------------------------------------------------------
# decide: out of order, finals, ties


def test_the_first_snapshot_applies() -> None:
    assert decide(None, invoice("open", FINALIZED)) is Decision.APPLY


def test_invoice_paid_before_finalized_and_created_keeps_paid() -> None:
    paid = invoice("paid", PAID)
    assert decide(paid, invoice("open", FINALIZED)) is Decision.FINAL
    assert decide(paid, invoice("draft", DRAFTED)) is Decision.FINAL


def test_payment_failed_after_paid_is_ignored() -> None:
    paid = invoice("paid", PAID)
    failed = track(invoice_event("invoice.payment_failed", "open", FAILED, attempt_count=2))
    assert decide(paid, failed) is Decision.FINAL


def test_a_later_invoice_status_applies_even_from_an_older_event() -> None:
    failed = invoice("open", FAILED, attempt_count=2)
    assert decide(failed, invoice("paid", FAILED - 60)) is Decision.APPLY
    assert decide(invoice("draft", FINALIZED), invoice("open", DRAFTED)) is Decision.APPLY


def test_marked_uncollectible_applies_over_open_from_an_older_event() -> None:
    failed = invoice("open", FAILED, attempt_count=2)
    assert decide(failed, invoice("uncollectible", FINALIZED)) is Decision.APPLY


def test_an_earlier_invoice_status_never_applies_even_from_a_newer_event() -> None:
    assert decide(invoice("open", FINALIZED), invoice("draft", PAID)) is Decision.OLDER
    uncollectible = invoice("uncollectible", FAILED)
    assert decide(uncollectible, invoice("open", PAID)) is Decision.OLDER


def test_uncollectible_can_still_be_paid_or_voided_but_not_the_reverse() -> None:
    uncollectible = invoice("uncollectible", FAILED)
    assert decide(uncollectible, invoice("paid", PAID)) is Decision.APPLY
    assert decide(uncollectible, invoice("void", PAID)) is Decision.APPLY
    assert decide(invoice("paid", FAILED), invoice("uncollectible", PAID)) is Decision.FINAL
    assert decide(invoice("void", FAILED), invoice("uncollectible", PAID)) is Decision.FINAL


def test_paid_and_void_exclude_each_other() -> None:
    assert decide(invoice("paid", PAID), invoice("void", PAID + 60)) is Decision.FINAL
    assert decide(invoice("void", PAID), invoice("paid", PAID + 60)) is Decision.FINAL


def test_same_invoice_status_is_ordered_by_event_created() -> None:
    first = invoice("open", FINALIZED, attempt_count=1, next_payment_attempt=FAILED - 3600)
    second = invoice("open", FAILED, attempt_count=2, next_payment_attempt=1750924500)
    assert decide(first, second) is Decision.APPLY
    assert decide(second, first) is Decision.OLDER


def test_a_final_invoice_still_takes_newer_snapshots_of_the_same_status() -> None:
    paid = invoice("paid", PAID)
    later = invoice("paid", PAID + 5, hosted_invoice_url="https://invoice.stripe.com/i/new")
    assert decide(paid, later) is Decision.APPLY
    assert decide(later, paid) is Decision.OLDER


def test_a_newer_event_with_the_same_content_applies_its_created() -> None:
    assert decide(invoice("paid", PAID), invoice("paid", PAID + 1)) is Decision.APPLY


def test_a_tie_with_the_same_content_is_same() -> None:
    paid = track(invoice_event("invoice.paid", "paid", PAID))
    succeeded = track(invoice_event("invoice.payment_succeeded", "paid", PAID))
    assert decide(paid, succeeded) is Decision.SAME


def test_a_tie_with_different_kept_fields_is_refetched() -> None:
    one = invoice("open", FAILED, attempt_count=1)
    two = invoice("open", FAILED, attempt_count=2)
    assert decide(one, two) is Decision.REFETCH


def test_a_tie_between_invoice_statuses_is_decided_by_their_order() -> None:
    assert decide(invoice("open", PAID), invoice("paid", PAID)) is Decision.APPLY
    assert decide(invoice("paid", PAID), invoice("open", PAID)) is Decision.FINAL


def test_a_tie_with_different_subscription_statuses_is_refetched() -> None:
    assert decide(subscription("active", 1750000000), subscription("past_due", 1750000000)) is (
        Decision.REFETCH
    )


def test_a_subscription_goes_back_and_forth_by_event_created() -> None:
    past_due = subscription("past_due", 1750666360)
    assert decide(past_due, subscription("active", 1750924531)) is Decision.APPLY
    assert decide(past_due, subscription("active", 1750377851)) is Decision.OLDER
    active = subscription("active", 1750924531)
    assert decide(active, subscription("past_due", 1751000000)) is Decision.APPLY
    assert decide(active, subscription("past_due", 1750666360)) is Decision.OLDER


@pytest.mark.parametrize("final", ["canceled", "incomplete_expired"])
def test_an_ended_subscription_stays_ended(final: str) -> None:
    ended = subscription(final, 1750000000)
    assert decide(ended, subscription("active", 1750000100)) is Decision.FINAL
    assert decide(ended, subscription("incomplete", 1749990000)) is Decision.FINAL
    # Nothing follows an ended subscription, so its end applies over any live snapshot.
    assert decide(subscription("active", 1750000100), ended) is Decision.APPLY


def test_a_deleted_customer_stays_deleted() -> None:
    deleted = track(envelope("customer.deleted", customer_object(CUS), created=1751000000))
    assert decide(deleted, customer(created=1751000100, name="Globex")) is Decision.FINAL
    assert decide(customer(created=1751000100), deleted) is Decision.APPLY


def test_a_late_attach_does_not_revive_a_detached_card() -> None:
    detached = track(payment_method_detached(CUS, payment_method_id=PM))
    assert decide(detached, card(created=detached.event_created - 10)) is Decision.FINAL
    assert decide(card(created=detached.event_created + 10), detached) is Decision.APPLY


def test_decide_refuses_two_different_objects() -> None:
    with pytest.raises(ValueError, match="in_TESTother"):
        decide(invoice("open", FAILED), invoice("open", FAILED, id="in_TESTother"))
    with pytest.raises(ValueError, match="subscription"):
        decide(invoice("open", FAILED, id=SUB), subscription("active", FAILED))


def apply_in_order(snapshots: list[Tracked]) -> Tracked | None:
    """The handler's loop without a re-fetch: keep what `decide` lets through."""
    stored: Tracked | None = None
    for incoming in snapshots:
        decision = decide(stored, incoming)
        assert decision is not Decision.REFETCH
        if decision is Decision.APPLY:
            stored = incoming
    return stored


def test_any_arrival_order_of_an_invoice_life_ends_at_its_last_state() -> None:
    life = [
        invoice("draft", DRAFTED),
        track(invoice_event("invoice.finalized", "open", FINALIZED, attempt_count=0)),
        track(invoice_event("invoice.payment_failed", "open", FINALIZED + 7, attempt_count=1)),
        track(invoice_event("invoice.payment_failed", "open", FAILED, attempt_count=2)),
        invoice("paid", PAID),
    ]
    for order in itertools.permutations(life):
        assert apply_in_order(list(order)) == life[-1], [t.event_created for t in order]


def test_any_arrival_order_of_a_written_off_invoice_that_is_paid_ends_paid() -> None:
    life = [
        invoice("draft", DRAFTED),
        invoice("open", FINALIZED, attempt_count=0),
        invoice("open", FAILED, attempt_count=8, next_payment_attempt=None),
        invoice("uncollectible", FAILED + 3600, attempt_count=8, next_payment_attempt=None),
        invoice("paid", PAID, attempt_count=8),
    ]
    for order in itertools.permutations(life):
        assert apply_in_order(list(order)) == life[-1], [t.event_created for t in order]
    for order in itertools.permutations(life[:4]):
        assert apply_in_order(list(order)) == life[3], [t.event_created for t in order]


def test_any_arrival_order_of_a_subscription_life_ends_at_its_last_state() -> None:
    life = [
        subscription("incomplete", 1737331200),
        subscription("active", 1737331260),
        subscription("past_due", 1750666360),
        subscription("active", 1750924531),
        subscription("canceled", 1752969600),
    ]
    for order in itertools.permutations(life):
        assert apply_in_order(list(order)) == life[-1], [t.event_created for t in order]
    for order in itertools.permutations(life[:4]):
        assert apply_in_order(list(order)) == life[3], [t.event_created for t in order]


# ---------------------------------------------------------------------------------------------
# resolve_refetched


def test_a_refetch_is_the_truth() -> None:
    stored = subscription("active", 1750000000)
    fetched = subscription("past_due", 1750000042)
    assert resolve_refetched(stored, fetched) is Decision.APPLY
    assert resolve_refetched(None, fetched) is Decision.APPLY
    # Even a fetch stamped no later than the tie: it is newer than both tied events.
    assert resolve_refetched(stored, subscription("past_due", 1750000000)) is Decision.APPLY


def test_a_refetch_does_not_reopen_a_final_state() -> None:
    assert resolve_refetched(
        subscription("canceled", 1750000000), subscription("active", 1750000042)
    ) is (Decision.FINAL)
    assert resolve_refetched(invoice("paid", PAID), invoice("open", PAID + 42)) is Decision.FINAL
    assert resolve_refetched(invoice("uncollectible", PAID), invoice("open", PAID + 42)) is (
        Decision.OLDER
    )
    assert resolve_refetched(invoice("open", PAID), invoice("paid", PAID + 42)) is Decision.APPLY


def test_a_refetch_with_nothing_new_is_same() -> None:
    stored = invoice("paid", PAID)
    assert resolve_refetched(stored, invoice("paid", PAID)) is Decision.SAME
    # Same content at a later time still moves the stored `created` forward.
    assert resolve_refetched(stored, invoice("paid", PAID + 42)) is Decision.APPLY


def test_resolve_refetched_refuses_two_different_objects() -> None:
    with pytest.raises(ValueError, match="sub_TESTother"):
        resolve_refetched(subscription("active", 1), subscription("active", 2, "sub_TESTother"))


# ---------------------------------------------------------------------------------------------
# account_fields


def account(
    *,
    customer_: Tracked | None = None,
    invoices: list[Tracked] | None = None,
    subscriptions: list[Tracked] | None = None,
    payment_method: Tracked | None = None,
) -> dict[str, Any]:
    return account_fields(CUS, customer_, invoices or [], subscriptions or [], payment_method)


def test_nothing_known_writes_only_the_customer_id() -> None:
    assert account() == {fields.CUSTOMER_ID: CUS}


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (["active"], "current"),
        (["trialing"], "current"),
        (["incomplete"], "past_due"),
        (["past_due"], "past_due"),
        (["unpaid"], "unpaid"),
        (["active", "past_due"], "past_due"),
        (["past_due", "unpaid", "trialing"], "unpaid"),
        (["canceled", "active"], "current"),
        (["incomplete_expired", "past_due"], "past_due"),
        (["canceled"], "canceled"),
        (["canceled", "incomplete_expired"], "canceled"),
        (["paused", "past_due"], "past_due"),
        (["paused"], None),
        (["paused", "canceled"], None),
        ([], None),
    ],
)
def test_billing_status_is_the_worst_live_subscription(
    statuses: list[str], expected: str | None
) -> None:
    subscriptions = [
        subscription(status, 1750000000, f"sub_TEST{i}") for i, status in enumerate(statuses)
    ]
    values = account(customer_=customer(), subscriptions=subscriptions)
    assert values.get(fields.BILLING_STATUS, "absent") == (expected or "absent")
    if expected is not None:
        assert expected in fields.BILLING_STATUSES


@pytest.mark.parametrize("statuses", [[], ["active"], ["unpaid", "trialing"]])
def test_a_deleted_customer_is_canceled(statuses: list[str]) -> None:
    deleted = track(envelope("customer.deleted", customer_object(CUS), created=1751000000))
    subscriptions = [
        subscription(status, 1750000000, f"sub_TEST{i}") for i, status in enumerate(statuses)
    ]
    assert account(customer_=deleted, subscriptions=subscriptions)[fields.BILLING_STATUS] == (
        "canceled"
    )


def test_an_open_invoice_in_dunning_fills_every_invoice_field() -> None:
    failed = track(sample("invoice_payment_failed"))
    assert account(invoices=[failed]) == {
        fields.CUSTOMER_ID: CUS,
        fields.INVOICE_NUMBER: "GLBX7Q2A-0004",
        fields.INVOICE_STATUS: "open",
        fields.INVOICE_AMOUNT_DUE: Decimal("120.00"),
        fields.INVOICE_CURRENCY: "USD",
        fields.INVOICE_URL: "https://invoice.stripe.com/i/acct_TESTxxxxxxxx/test_in_TEST5Xc2Vb9Nm",
        fields.INVOICE_PDF_URL: "https://pay.stripe.com/invoice/acct_TESTxxxxxxxx/test_in_TEST5Xc2Vb9Nm/pdf",
        fields.DUNNING_ATTEMPTS: 2,
        fields.NEXT_PAYMENT_ATTEMPT: "2025-06-26T07:55:00.000Z",
    }


def test_a_paid_invoice_ends_dunning() -> None:
    paid = track(invoice_event("invoice.paid", "paid", PAID, next_payment_attempt=1750924500))
    values = account(invoices=[paid])
    assert values[fields.INVOICE_STATUS] == "paid"
    assert (values[fields.DUNNING_ATTEMPTS], values[fields.NEXT_PAYMENT_ATTEMPT]) == (0, None)


def test_an_uncollectible_invoice_keeps_its_attempts_but_no_next_retry() -> None:
    uncollectible = invoice("uncollectible", PAID, attempt_count=8, next_payment_attempt=PAID)
    values = account(invoices=[uncollectible])
    assert (values[fields.DUNNING_ATTEMPTS], values[fields.NEXT_PAYMENT_ATTEMPT]) == (8, None)


def test_an_open_invoice_without_a_scheduled_retry_has_no_next_attempt() -> None:
    values = account(invoices=[invoice("open", FAILED, attempt_count=4, next_payment_attempt=None)])
    assert (values[fields.DUNNING_ATTEMPTS], values[fields.NEXT_PAYMENT_ATTEMPT]) == (4, None)


def test_the_last_invoice_is_the_newest_that_is_not_a_draft() -> None:
    older = invoice("paid", PAID, id="in_TESTolder", number="GLBX7Q2A-0003", created=DRAFTED - 1)
    newest = invoice("open", FAILED, number="GLBX7Q2A-0004")
    draft = invoice("draft", PAID + 99, id="in_TESTdraft", created=PAID + 99)
    values = account(invoices=[newest, draft, older])
    assert values[fields.INVOICE_NUMBER] == "GLBX7Q2A-0004"
    values = account(invoices=[draft, older])
    assert values[fields.INVOICE_NUMBER] == "GLBX7Q2A-0003"


def test_invoices_created_in_the_same_second_are_ordered_by_id() -> None:
    a = invoice("open", FAILED, id="in_TESTaaaa", number="A-1")
    b = invoice("paid", PAID, id="in_TESTbbbb", number="B-1")
    assert account(invoices=[b, a])[fields.INVOICE_NUMBER] == "B-1"
    assert account(invoices=[a, b])[fields.INVOICE_NUMBER] == "B-1"


def test_only_drafts_write_no_invoice_fields() -> None:
    values = account(invoices=[invoice("draft", DRAFTED)])
    assert values == {fields.CUSTOMER_ID: CUS}


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (12000, "usd", "120.00"),
        (12005, "eur", "120.05"),
        (0, "usd", "0.00"),
        (12000, "jpy", "12000"),
        (12000, "JPY", "12000"),
        (500000, "krw", "500000"),
        (1500, "xof", "1500"),
        (12345, "kwd", "12.345"),
        (12340, "bhd", "12.340"),
        (1000, "tnd", "1.000"),
    ],
)
def test_amounts_are_major_units_with_the_currency_decimals(
    amount: int, currency: str, expected: str
) -> None:
    assert str(major_units(amount, currency)) == expected


@pytest.mark.parametrize(
    "currency",
    [
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    ],
)
def test_zero_decimal_currencies_have_no_minor_unit(currency: str) -> None:
    assert str(major_units(4200, currency)) == "4200"


@pytest.mark.parametrize("currency", ["bhd", "jod", "kwd", "omr", "tnd"])
def test_three_decimal_currencies_have_thousandths(currency: str) -> None:
    assert str(major_units(4200, currency)) == "4.200"


@pytest.mark.parametrize(
    ("currency", "amount_due", "expected"), [("jpy", 12000, "12000"), ("kwd", 12345, "12.345")]
)
def test_the_last_invoice_amount_follows_its_currency(
    currency: str, amount_due: int, expected: str
) -> None:
    values = account(invoices=[invoice("open", FAILED, currency=currency, amount_due=amount_due)])
    assert str(values[fields.INVOICE_AMOUNT_DUE]) == expected
    assert values[fields.INVOICE_CURRENCY] == currency.upper()


def test_the_default_card_shows_brand_last4_and_expiry() -> None:
    values = account(customer_=customer(), payment_method=card())
    assert (
        values[fields.PAYMENT_METHOD_BRAND],
        values[fields.PAYMENT_METHOD_LAST4],
        values[fields.PAYMENT_METHOD_EXPIRY],
    ) == ("visa", "4242", "09/2029")


PAYMENT_METHOD_FIELDS = (
    fields.PAYMENT_METHOD_BRAND,
    fields.PAYMENT_METHOD_LAST4,
    fields.PAYMENT_METHOD_EXPIRY,
)


def test_no_default_payment_method_clears_the_card_fields() -> None:
    values = account(customer_=with_default(None), payment_method=card())
    assert {key: values[key] for key in PAYMENT_METHOD_FIELDS} == dict.fromkeys(
        PAYMENT_METHOD_FIELDS
    )


def test_a_detached_or_non_card_default_clears_the_card_fields() -> None:
    detached = track(payment_method_detached(CUS, payment_method_id=PM))
    values = account(customer_=with_default(PM), payment_method=detached)
    assert {key: values[key] for key in PAYMENT_METHOD_FIELDS} == dict.fromkeys(
        PAYMENT_METHOD_FIELDS
    )
    obj = payment_method_object(CUS, PM)
    del obj["card"]
    obj.update(type="us_bank_account", us_bank_account={"bank_name": "STRIPE", "last4": "6789"})
    bank = track(envelope("payment_method.attached", obj))
    values = account(customer_=with_default(PM), payment_method=bank)
    assert {key: values[key] for key in PAYMENT_METHOD_FIELDS} == dict.fromkeys(
        PAYMENT_METHOD_FIELDS
    )


def test_card_fields_are_left_alone_until_the_default_is_known() -> None:
    assert not set(PAYMENT_METHOD_FIELDS) & set(account(payment_method=card()))
    assert not set(PAYMENT_METHOD_FIELDS) & set(account(customer_=with_default(PM)))
    other = card(payment_method_id="pm_TESTother1Zx")
    assert not set(PAYMENT_METHOD_FIELDS) & set(
        account(customer_=with_default(PM), payment_method=other)
    )


def test_every_written_field_is_a_declared_account_field() -> None:
    values = account(
        customer_=customer(),
        invoices=[track(sample("invoice_payment_failed"))],
        subscriptions=[subscription("past_due", FAILED)],
        payment_method=card(),
    )
    assert set(values) == set(fields.WRITTEN)
    assert values[fields.INVOICE_STATUS] in fields.INVOICE_STATUSES
    assert values[fields.BILLING_STATUS] in fields.BILLING_STATUSES
