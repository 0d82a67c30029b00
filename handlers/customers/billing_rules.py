"""What the Stripe -> Salesforce billing handler keeps of each Stripe object, whether a new
snapshot of it applies, and the Account fields that follow. Pure: no I/O.

Stripe events arrive out of order (retries, parallel delivery) and objects carry no version, so
a snapshot applies by these monotonic rules (`decide`):

- Final states never change: an invoice that is `paid` or `void`, a subscription that is
  `canceled` or `incomplete_expired`, a deleted customer, a detached payment method (Stripe
  cannot re-attach one). A snapshot with another status is ignored (FINAL); one that reaches a
  final state applies whatever its event's `created`, since nothing can follow a final state.
- Invoice statuses only move forward, in the order their `status_transitions` record them:
  draft < open < uncollectible < paid/void (`uncollectible` can still become `paid` or `void`).
  A higher status applies even from an older event; a lower one never does (OLDER).
- Otherwise the event's `created` decides: newer applies, older is ignored. `created` has
  1-second resolution, so on a tie a different status or kept field cannot be ordered: re-fetch
  the object and apply that (REFETCH, then `resolve_refetched`); the same content is SAME.
- Subscription statuses that are not final go back and forth (active <-> past_due), so for
  them only `created` decides.

`account_fields` then derives the Account's billing fields from the tracked objects.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import msgspec

from handlers.customers import fields

Kind = Literal["invoice", "subscription", "customer", "payment_method"]

_KINDS: Mapping[str, Kind] = {
    "invoice": "invoice",
    "subscription": "subscription",
    "customer": "customer",
    "payment_method": "payment_method",
}

_FINAL: Mapping[Kind, frozenset[str]] = {
    "invoice": frozenset({"paid", "void"}),
    "subscription": frozenset({"canceled", "incomplete_expired"}),
    "customer": frozenset({"deleted"}),
    "payment_method": frozenset({"detached"}),
}

# Invoice statuses below the final ones, in the only order Stripe moves through them.
_INVOICE_RANK: Mapping[str | None, int] = {"draft": 0, "open": 1, "uncollectible": 2}

_INVOICE_KEPT = (
    "number",
    "status",
    "amount_due",
    "currency",
    "hosted_invoice_url",
    "invoice_pdf",
    "attempt_count",
    "next_payment_attempt",
    "created",
)
_STATUS_TRANSITIONS = ("finalized_at", "paid_at", "voided_at", "marked_uncollectible_at")
# With address and metadata: every customer field the mapping file can make Stripe-owned.
_CUSTOMER_KEPT = (
    "email",
    "name",
    "individual_name",
    "business_name",
    "phone",
    "description",
    "tax_exempt",
    "created",
)
# Display data only: a card's fingerprint, funding, country, wallet or billing details never
# reach sfstripe's database or Salesforce.
_CARD_KEPT = ("brand", "last4", "exp_month", "exp_year")

_ZERO_DECIMAL = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv"}
    | {"xaf", "xof", "xpf"}
)
_THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})

# Paused (no invoices until resumed) and statuses unknown here count for nothing.
_BILLING_STATUS: Mapping[str | None, str] = {
    "unpaid": "unpaid",
    "past_due": "past_due",
    "incomplete": "past_due",
    "active": "current",
    "trialing": "current",
    "canceled": "canceled",
    "incomplete_expired": "canceled",
}
_SEVERITY = ("unpaid", "past_due", "current")  # worst first


class Tracked(msgspec.Struct, frozen=True):
    """What sfstripe keeps of one Stripe object: its latest applied state."""

    object_id: str
    kind: Kind
    stripe_customer: str
    event_created: int  # `created` of the event that set it, or when it was re-fetched
    status: str | None  # invoice/subscription status, "deleted", "detached", else None
    body: dict[str, Any]  # the kept fields only


class Decision(enum.Enum):
    """What to do with an incoming snapshot, given the stored one."""

    APPLY = "apply"
    OLDER = "older"
    FINAL = "final"
    SAME = "same"
    REFETCH = "refetch"


def kind_of(object_type: str) -> Kind | None:
    """The kind of a Stripe `object` value, None for objects the billing status ignores."""
    return _KINDS.get(object_type)


def tracked(
    kind: Kind,
    obj: dict[str, Any],
    event_created: int,
    *,
    event_type: str = "",
    previous_customer: str | None = None,
) -> Tracked | None:
    """The kept part of `obj` (an event's `data.object`, or a re-fetch), or None when it names
    no customer or has no id (the `invoice.upcoming` preview).

    `previous_customer` is the event's `data.previous_attributes.customer`: a detached payment
    method names its former customer only there."""
    object_id = obj.get("id")
    if object_id is None:
        return None
    status: str | None
    if kind == "customer":
        customer: str | None = object_id
        deleted = bool(obj.get("deleted")) or event_type == "customer.deleted"
        status = "deleted" if deleted else None
        body = _customer_body(obj)
    elif kind == "payment_method":
        customer = _id_of(obj.get("customer"))
        detached = event_type == "payment_method.detached" or customer is None
        status = "detached" if detached else None
        customer = customer or previous_customer
        body = _payment_method_body(obj)
    else:
        customer = _id_of(obj.get("customer"))
        status = obj.get("status")
        body = _invoice_body(obj) if kind == "invoice" else _subscription_body(obj)
    if customer is None:
        return None
    return Tracked(object_id, kind, customer, event_created, status, body)


def _id_of(value: str | dict[str, Any] | None) -> str | None:
    """An id field's value, whether Stripe sent the id or the expanded object."""
    return value.get("id") if isinstance(value, dict) else value


def _invoice_body(obj: dict[str, Any]) -> dict[str, Any]:
    body = {key: obj.get(key) for key in _INVOICE_KEPT}
    transitions = obj.get("status_transitions") or {}
    body["status_transitions"] = {key: transitions.get(key) for key in _STATUS_TRANSITIONS}
    return body


def _subscription_body(obj: dict[str, Any]) -> dict[str, Any]:
    return {key: obj.get(key) for key in ("status", "created", "canceled_at")}


def _customer_body(obj: dict[str, Any]) -> dict[str, Any]:
    settings = obj.get("invoice_settings") or {}
    address = obj.get("address")
    body = {key: obj.get(key) for key in _CUSTOMER_KEPT}
    body["default_payment_method"] = _id_of(settings.get("default_payment_method"))
    body["address"] = dict(address) if address is not None else None
    body["metadata"] = dict(obj.get("metadata") or {})
    return body


def _payment_method_body(obj: dict[str, Any]) -> dict[str, Any]:
    body = {"type": obj.get("type"), "created": obj.get("created")}
    if body["type"] == "card":
        body["card"] = {key: obj["card"].get(key) for key in _CARD_KEPT}
    return body


def decide(stored: Tracked | None, incoming: Tracked) -> Decision:
    """Whether the snapshot `incoming` replaces what is stored of the same object."""
    if stored is None:
        return Decision.APPLY
    _check_same_object(stored, incoming)
    by_status = _by_status(stored, incoming)
    if by_status is not None:
        return by_status
    if incoming.event_created != stored.event_created:
        newer = incoming.event_created > stored.event_created
        return Decision.APPLY if newer else Decision.OLDER
    return Decision.SAME if _same_content(stored, incoming) else Decision.REFETCH


def resolve_refetched(stored: Tracked | None, fetched: Tracked) -> Decision:
    """After REFETCH: the object as Stripe returns it now is the truth, unless the status rules
    reject it (FINAL, or OLDER for an invoice status behind the stored one, which Stripe never
    returns). Date `fetched` no earlier than the tied event; nothing new in content or date is
    SAME."""
    if stored is None:
        return Decision.APPLY
    _check_same_object(stored, fetched)
    by_status = _by_status(stored, fetched)
    if by_status is not None and by_status is not Decision.APPLY:
        return by_status
    if _same_content(stored, fetched) and fetched.event_created <= stored.event_created:
        return Decision.SAME
    return Decision.APPLY


def _check_same_object(stored: Tracked, incoming: Tracked) -> None:
    if (stored.kind, stored.object_id) != (incoming.kind, incoming.object_id):
        raise ValueError(
            f"compared {stored.kind} {stored.object_id} with {incoming.kind} {incoming.object_id}"
        )


def _by_status(stored: Tracked, incoming: Tracked) -> Decision | None:
    """The verdict of the status order alone; None when only `created` can tell."""
    if stored.status == incoming.status:
        return None
    if stored.status in _FINAL[stored.kind]:
        return Decision.FINAL
    if incoming.status in _FINAL[incoming.kind]:
        return Decision.APPLY
    if stored.kind == "invoice":
        before = _INVOICE_RANK.get(stored.status)
        after = _INVOICE_RANK.get(incoming.status)
        if before is not None and after is not None:
            return Decision.APPLY if after > before else Decision.OLDER
    return None


def _same_content(a: Tracked, b: Tracked) -> bool:
    return a.status == b.status and a.body == b.body


def account_fields(
    stripe_customer: str,
    customer: Tracked | None,
    invoices: Sequence[Tracked],
    subscriptions: Sequence[Tracked],
    payment_method: Tracked | None,
) -> dict[str, Any]:
    """Salesforce Account field -> value, from one customer's tracked objects. A field that
    cannot be known yet is left out, so that writing the result never blanks it."""
    values: dict[str, Any] = {fields.CUSTOMER_ID: stripe_customer}
    status = _billing_status(customer, subscriptions)
    if status is not None:
        values[fields.BILLING_STATUS] = status
    invoice = _last_invoice(invoices)
    if invoice is not None:
        values.update(_invoice_fields(invoice))
    if customer is not None:
        values.update(_payment_method_fields(customer, payment_method))
    return values


def _billing_status(customer: Tracked | None, subscriptions: Sequence[Tracked]) -> str | None:
    """The worst status among live subscriptions; `canceled` once all of them have ended or
    the customer is deleted. Paused subscriptions (no invoices until resumed) count for nothing,
    so an account whose only live subscriptions are paused keeps the status it had."""
    if customer is not None and customer.status == "deleted":
        return "canceled"
    mapped = [_BILLING_STATUS.get(subscription.status) for subscription in subscriptions]
    for status in _SEVERITY:
        if status in mapped:
            return status
    if mapped and all(status == "canceled" for status in mapped):
        return "canceled"
    return None


def _last_invoice(invoices: Sequence[Tracked]) -> Tracked | None:
    """The newest invoice a customer can see (drafts are not sent or charged yet)."""
    visible = [invoice for invoice in invoices if invoice.status != "draft"]
    if not visible:
        return None
    return max(visible, key=lambda invoice: (invoice.body["created"], invoice.object_id))


def _invoice_fields(invoice: Tracked) -> dict[str, Any]:
    body = invoice.body
    dunning = invoice.status in ("open", "uncollectible")
    next_attempt = body["next_payment_attempt"]
    return {
        fields.INVOICE_NUMBER: body["number"],
        fields.INVOICE_STATUS: invoice.status,
        fields.INVOICE_AMOUNT_DUE: major_units(body["amount_due"], body["currency"]),
        fields.INVOICE_CURRENCY: body["currency"].upper(),
        fields.INVOICE_URL: body["hosted_invoice_url"],
        fields.INVOICE_PDF_URL: body["invoice_pdf"],
        fields.DUNNING_ATTEMPTS: body["attempt_count"] if dunning else 0,
        fields.NEXT_PAYMENT_ATTEMPT: (
            _iso_utc(next_attempt)
            if invoice.status == "open" and next_attempt is not None
            else None
        ),
    }


def major_units(amount: int, currency: str) -> Decimal:
    """A Stripe amount (smallest currency unit) in major units, with the currency's decimals:
    12000 usd -> 120.00, 12000 jpy -> 12000, 12345 kwd -> 12.345."""
    code = currency.lower()
    exponent = 0 if code in _ZERO_DECIMAL else 3 if code in _THREE_DECIMAL else 2
    return Decimal(amount).scaleb(-exponent)


def _iso_utc(timestamp: int) -> str:
    """Unix seconds as Salesforce's datetime format."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _payment_method_fields(customer: Tracked, payment_method: Tracked | None) -> dict[str, Any]:
    """Brand, last 4 and expiry of the customer's default card; cleared when the default is
    gone, detached or not a card; left out while the default's details have not arrived."""
    cleared = dict.fromkeys(
        (fields.PAYMENT_METHOD_BRAND, fields.PAYMENT_METHOD_LAST4, fields.PAYMENT_METHOD_EXPIRY)
    )
    default = customer.body["default_payment_method"]
    if default is None:
        return cleared
    if payment_method is None or payment_method.object_id != default:
        return {}
    card = payment_method.body.get("card")
    if payment_method.status == "detached" or card is None:
        return cleared
    return {
        fields.PAYMENT_METHOD_BRAND: card["brand"],
        fields.PAYMENT_METHOD_LAST4: card["last4"],
        fields.PAYMENT_METHOD_EXPIRY: f"{card['exp_month']:02d}/{card['exp_year']:04d}",
    }
