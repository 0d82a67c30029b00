"""Invoice items and invoices: draft -> open -> paid / void / uncollectible, payment attempts
(with the dunning schedule for automatic ones), InvoicePayments, hosted page and PDF.

Shapes follow 2025-03-31.basil and later: `invoice.parent.subscription_details`, line items with
`parent` and `pricing`, no `paid` / `charge` / `payment_intent` on the invoice.
"""

from __future__ import annotations

import copy
import html
from decimal import Decimal

from emulators.stripe import payment_methods
from emulators.stripe.account import Account, public, renders
from emulators.stripe.errors import StripeError, card_declined, invalid, missing_param
from emulators.stripe.lists import created_matches, page
from emulators.stripe.params import (
    apply_metadata,
    boolean,
    choice,
    integer,
    mapping,
    required_text,
    text,
)
from emulators.stripe.routing import Call, Obj, Origin, Router

router = Router()
TIMES = "\u00d7"  # Stripe writes "8 \u00d7 Pro seat" in line descriptions


# -- invoice items -----------------------------------------------------------------------------
def new_item(
    account: Account,
    customer: Obj,
    *,
    amount: int,
    currency: str,
    description: str | None,
    origin: Origin,
    price: Obj | None = None,
    quantity: int = 1,
    period: tuple[int, int] | None = None,
    subscription: str | None = None,
    subscription_item: str | None = None,
    proration: bool = False,
    invoice: str | None = None,
    metadata: dict[str, str] | None = None,
) -> Obj:
    """A pending invoice item (or one on draft `invoice`), with its `invoiceitem.created`."""
    now = account.now()
    start, end = period or (now, now)
    item: Obj = {
        "id": account.new_id("ii", 24),
        "object": "invoiceitem",
        "amount": amount,
        "currency": currency,
        "customer": customer["id"],
        "date": now,
        "description": description,
        "discountable": not proration,
        "discounts": [],
        "invoice": invoice,
        "livemode": False,
        "metadata": dict(metadata or {}),
        "net_amount": amount,
        "parent": (
            {
                "type": "subscription_details",
                "subscription_details": {
                    "subscription": subscription,
                    "subscription_item": subscription_item,
                },
            }
            if subscription
            else None
        ),
        "period": {"end": end, "start": start},
        "pricing": {
            "price_details": {"price": price["id"], "product": price["product"]} if price else None,
            "type": "price_details" if price else None,
            "unit_amount_decimal": price["unit_amount_decimal"]
            if price
            else str(Decimal(amount) / max(quantity, 1)),
        },
        "proration": proration,
        "quantity": quantity,
        "tax_rates": [],
        "test_clock": None,
    }
    return account.created(item, origin)


def _item_line(invoice: Obj, item: Obj) -> Obj:
    subscription = (item["parent"] or {}).get("subscription_details") or {}
    if subscription:
        parent: Obj = {
            "type": "subscription_item_details",
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": item["id"],
                "proration": item["proration"],
                "proration_details": {"credited_items": None},
                "subscription": subscription.get("subscription"),
                "subscription_item": subscription.get("subscription_item"),
            },
        }
    else:
        parent = {
            "type": "invoice_item_details",
            "invoice_item_details": {
                "invoice_item": item["id"],
                "proration": item["proration"],
                "proration_details": {"credited_items": None},
                "subscription": None,
            },
            "subscription_item_details": None,
        }
    return {
        "amount": item["amount"],
        "currency": item["currency"],
        "description": item["description"],
        "metadata": dict(item["metadata"]),
        "parent": parent,
        "period": dict(item["period"]),
        "pricing": dict(item["pricing"]),
        "quantity": item["quantity"],
    }


def subscription_line(
    *,
    subscription: str,
    subscription_item: str,
    price: Obj,
    product_name: str,
    quantity: int,
    amount: int,
    period: tuple[int, int],
    description: str | None = None,
) -> Obj:
    """A line billed directly from a subscription item (licensed in advance, metered after)."""
    return {
        "amount": amount,
        "currency": price["currency"],
        "description": description or f"{quantity} {TIMES} {product_name}",
        "metadata": {},
        "parent": {
            "type": "subscription_item_details",
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": False,
                "proration_details": {"credited_items": None},
                "subscription": subscription,
                "subscription_item": subscription_item,
            },
        },
        "period": {"end": period[1], "start": period[0]},
        "pricing": {
            "price_details": {"price": price["id"], "product": price["product"]},
            "type": "price_details",
            "unit_amount_decimal": price["unit_amount_decimal"],
        },
        "quantity": quantity,
    }


# -- invoices ----------------------------------------------------------------------------------
def new_invoice(
    account: Account,
    customer: Obj,
    *,
    billing_reason: str,
    currency: str,
    subscription: Obj | None = None,
    collection_method: str = "charge_automatically",
    days_until_due: int | None = None,
    auto_advance: bool = True,
    period: tuple[int, int] | None = None,
    description: str | None = None,
) -> Obj:
    """A draft invoice, not stored yet: add lines, then `publish` it."""
    now = account.now()
    start, end = period or (now, now)
    return {
        "id": account.new_id("in", 24),
        "object": "invoice",
        "account_country": "US",
        "account_name": account.settings.account_name,
        "amount_due": 0,
        "amount_overpaid": 0,
        "amount_paid": 0,
        "amount_remaining": 0,
        "amount_shipping": 0,
        "attempt_count": 0,
        "attempted": False,
        "auto_advance": auto_advance,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
        "billing_reason": billing_reason,
        "collection_method": collection_method,
        "created": now,
        "currency": currency,
        "customer": customer["id"],
        "customer_address": customer.get("address"),
        "customer_email": customer.get("email"),
        "customer_name": customer.get("name"),
        "customer_phone": customer.get("phone"),
        "default_payment_method": None,
        "description": description,
        "discounts": [],
        "due_date": None,
        "effective_at": None,
        "ending_balance": None,
        "footer": None,
        "hosted_invoice_url": None,
        "invoice_pdf": None,
        "last_finalization_error": None,
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": None,
        "number": None,
        "parent": (
            {
                "type": "subscription_details",
                "quote_details": None,
                "subscription_details": {
                    "metadata": dict(subscription["metadata"]),
                    "subscription": subscription["id"],
                },
            }
            if subscription
            else None
        ),
        "period_end": end,
        "period_start": start,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "starting_balance": 0,
        "status": "draft",
        "status_transitions": {
            "finalized_at": None,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        "subtotal": 0,
        "subtotal_excluding_tax": 0,
        "test_clock": None,
        "total": 0,
        "total_discount_amounts": [],
        "total_excluding_tax": 0,
        "total_taxes": [],
        "webhooks_delivered_at": now,
        "_lines": [],
        "_days_until_due": days_until_due,
        "_finalize_at": None,
    }


def subscription_of(invoice: Obj) -> str | None:
    parent = invoice.get("parent") or {}
    details = parent.get("subscription_details") or {}
    subscription: str | None = details.get("subscription")
    return subscription


def add_line(account: Account, invoice: Obj, line: Obj) -> None:
    line = {
        "id": account.new_id("il", 24),
        "object": "line_item",
        "discount_amounts": [],
        "discountable": True,
        "discounts": [],
        "invoice": invoice["id"],
        "livemode": False,
        "pretax_credit_amounts": [],
        "taxes": [],
        **line,
    }
    invoice["_lines"].append(line)
    _totals(invoice)


def _totals(invoice: Obj) -> None:
    subtotal = sum(line["amount"] for line in invoice["_lines"])
    invoice["subtotal"] = invoice["subtotal_excluding_tax"] = subtotal
    invoice["total"] = invoice["total_excluding_tax"] = subtotal
    if invoice["status"] == "draft":
        invoice["amount_due"] = max(0, subtotal)
        invoice["amount_remaining"] = invoice["amount_due"]


def pull_pending_items(account: Account, invoice: Obj, subscription: str | None) -> None:
    """Move the customer's pending invoice items (of `subscription`, when given) onto `invoice`."""
    pending = account.all(
        "invoiceitem",
        lambda item: (
            item["customer"] == invoice["customer"]
            and item["invoice"] is None
            and (
                subscription is None
                or ((item["parent"] or {}).get("subscription_details") or {}).get("subscription")
                == subscription
            )
        ),
    )
    for item in reversed(pending):  # oldest first
        item["invoice"] = invoice["id"]
        add_line(account, invoice, _item_line(invoice, item))


def publish(account: Account, invoice: Obj, origin: Origin) -> Obj:
    _totals(invoice)
    return account.created(invoice, origin)


@renders("invoice")
def render_invoice(account: Account, invoice: Obj) -> Obj:
    shown = public(invoice)
    lines = copy.deepcopy(invoice["_lines"])
    shown["lines"] = {
        "object": "list",
        "data": lines,
        "has_more": False,
        "total_count": len(lines),
        "url": f"/v1/invoices/{invoice['id']}/lines",
    }
    return dict(sorted(shown.items()))


def _customer(account: Account, invoice: Obj) -> Obj:
    return account.get("customer", invoice["customer"], "customer")


def finalize(account: Account, invoice: Obj, origin: Origin) -> None:
    """draft -> open: number, URLs, customer balance applied; a $0 invoice is paid at once."""
    if invoice["status"] != "draft":
        raise invalid(
            "This invoice is already finalized, you can't re-finalize a non-draft invoice."
        )
    customer = _customer(account, invoice)
    now = account.now()
    total = invoice["total"]
    balance = customer["balance"]
    if total + balance <= 0:
        amount_due, ending = 0, total + balance
    else:
        amount_due, ending = total + balance, 0
    with account.updating(invoice, origin, "invoice.finalized"):
        invoice["status"] = "open"
        invoice["number"] = f"{customer['invoice_prefix']}-{customer['next_invoice_sequence']:04d}"
        invoice["starting_balance"] = balance
        invoice["ending_balance"] = ending
        invoice["amount_due"] = amount_due
        invoice["amount_remaining"] = amount_due
        invoice["status_transitions"]["finalized_at"] = now
        invoice["effective_at"] = now
        invoice["hosted_invoice_url"] = f"{account.base_url}/_emulator/invoices/{invoice['id']}"
        invoice["invoice_pdf"] = f"{account.base_url}/_emulator/invoices/{invoice['id']}/pdf"
        invoice["_finalize_at"] = None
        if invoice["collection_method"] == "send_invoice":
            invoice["due_date"] = now + 86400 * (invoice["_days_until_due"] or 30)
    customer["next_invoice_sequence"] += 1  # Stripe sends no customer.updated for this
    if ending != balance:
        with account.updating(customer, origin):
            customer["balance"] = ending
    if amount_due == 0:
        mark_paid(account, invoice, origin, charged=False)


def _payment_method(account: Account, invoice: Obj) -> Obj | None:
    """Stripe's order: the invoice's, the subscription's, then the customer's default."""
    customer = _customer(account, invoice)
    subscription_id = subscription_of(invoice)
    subscription = account.find(subscription_id) if subscription_id else None
    for candidate in (
        invoice.get("default_payment_method"),
        (subscription or {}).get("default_payment_method"),
        customer["invoice_settings"]["default_payment_method"],
    ):
        if candidate:
            method = account.find(candidate)
            if method is not None and method.get("customer") == customer["id"]:
                return method
    return None


def mark_paid(account: Account, invoice: Obj, origin: Origin, *, charged: bool) -> None:
    now = account.now()
    with account.updating(invoice, origin):
        invoice["status"] = "paid"
        invoice["amount_paid"] = invoice["amount_remaining"]
        invoice["amount_remaining"] = 0
        invoice["next_payment_attempt"] = None
        invoice["status_transitions"]["paid_at"] = now
        if charged:
            invoice["attempted"] = True
            invoice["attempt_count"] += 1
    payment = {
        "id": account.new_id("inpay", 24),
        "object": "invoice_payment",
        "amount_paid": invoice["amount_paid"],
        "amount_requested": invoice["amount_paid"],
        "created": now,
        "currency": invoice["currency"],
        "invoice": invoice["id"],
        "is_default": True,
        "livemode": False,
        "payment": {"type": "payment_intent", "payment_intent": account.new_id("pi", 24)},
        "status": "paid",
        "status_transitions": {"canceled_at": None, "paid_at": now},
    }
    account.add(payment)
    account.emit("invoice.paid", invoice, origin)
    account.emit("invoice.payment_succeeded", invoice, origin)
    account.emit("invoice_payment.paid", payment, origin)
    from emulators.stripe import subscriptions

    subscriptions.invoice_paid(account, invoice, origin)


def attempt(
    account: Account,
    invoice: Obj,
    origin: Origin,
    *,
    automatic: bool,
    method: Obj | None = None,
) -> str | None:
    """Try to collect `invoice`; None on success, else the decline code.

    An automatic attempt that fails schedules the next retry from the dunning settings, and
    after the last one applies their final outcome (subscription and invoice status)."""
    method = method or _payment_method(account, invoice)
    decline = payment_methods.charge_outcome(method)
    if decline is None:
        mark_paid(account, invoice, origin, charged=True)
        return None
    dunning = account.settings.dunning
    now = account.now()
    retrying = automatic and invoice["billing_reason"] != "subscription_create"
    final = False
    with account.updating(invoice, origin):
        invoice["attempted"] = True
        invoice["attempt_count"] += 1
        if automatic and not retrying:
            invoice["next_payment_attempt"] = None
        if retrying:
            retries_used = invoice["attempt_count"] - 1
            if retries_used < len(dunning.retry_delays):
                invoice["next_payment_attempt"] = now + dunning.retry_delays[retries_used]
            else:
                invoice["next_payment_attempt"] = None
                final = True
    account.emit("invoice.payment_failed", invoice, origin)
    from emulators.stripe import subscriptions

    subscriptions.invoice_failed(account, invoice, origin, final=final)
    if final and dunning.invoice_status == "uncollectible" and invoice["status"] == "open":
        mark_uncollectible(account, invoice, origin)
    return decline


def mark_uncollectible(account: Account, invoice: Obj, origin: Origin) -> None:
    if invoice["status"] != "open":
        raise invalid("You can only mark open invoices as uncollectible.")
    with account.updating(invoice, origin):
        invoice["status"] = "uncollectible"
        invoice["next_payment_attempt"] = None
        invoice["status_transitions"]["marked_uncollectible_at"] = account.now()
    account.emit("invoice.marked_uncollectible", invoice, origin)


def void(account: Account, invoice: Obj, origin: Origin) -> None:
    if invoice["status"] not in ("open", "uncollectible"):
        raise invalid(
            f"You can only pass in open or uncollectible invoices. This invoice is "
            f"{invoice['status']}."
        )
    with account.updating(invoice, origin):
        invoice["status"] = "void"
        invoice["next_payment_attempt"] = None
        invoice["amount_remaining"] = 0
        invoice["status_transitions"]["voided_at"] = account.now()
    account.emit("invoice.voided", invoice, origin)
    from emulators.stripe import subscriptions

    subscriptions.invoice_voided(account, invoice, origin)


def finalize_and_collect(account: Account, invoice: Obj, origin: Origin) -> None:
    """What auto-advance does to a subscription's draft: finalise, then charge if automatic."""
    finalize(account, invoice, origin)
    subscription_id = subscription_of(invoice)
    subscription = account.find(subscription_id) if subscription_id else None
    if (
        invoice["status"] == "open"
        and invoice["collection_method"] == "charge_automatically"
        and (subscription is None or subscription["status"] != "unpaid")
    ):
        attempt(account, invoice, origin, automatic=True)


# -- routes ------------------------------------------------------------------------------------
@router.post("/v1/invoiceitems")
def create_item(call: Call) -> Obj:
    account, params = call.account, call.params
    customer = account.get("customer", required_text(params, "customer"), "customer")
    pricing = mapping(params, "pricing")
    price_id = text(params, "price") or text(pricing, "price")
    quantity = integer(params, "quantity", 1) or 1
    invoice_id = text(params, "invoice")
    if invoice_id is not None:
        target = account.get("invoice", invoice_id, "invoice")
        if target["status"] != "draft":
            raise invalid("You can only add invoice items to draft invoices.", "invoice")
    price = account.get("price", price_id, "price") if price_id else None
    if price is not None:
        amount = int(Decimal(price["unit_amount_decimal"]) * quantity)
        currency = price["currency"]
    else:
        given = integer(params, "amount")
        unit = text(params, "unit_amount_decimal") or text(params, "unit_amount")
        if given is None and unit is None:
            raise missing_param("amount")
        amount = given if given is not None else int(Decimal(str(unit)) * quantity)
        currency = required_text(params, "currency").lower()
    period = mapping(params, "period")
    item = new_item(
        account,
        customer,
        amount=amount,
        currency=currency,
        description=text(params, "description"),
        origin=call.origin,
        price=price,
        quantity=quantity,
        period=(integer(period, "start") or 0, integer(period, "end") or 0) if period else None,
        invoice=invoice_id,
    )
    apply_metadata(item["metadata"], params)
    if invoice_id is not None:
        target = account.get("invoice", invoice_id)
        with account.updating(target, call.origin):
            add_line(account, target, _item_line(target, item))
    return account.render(item)


@router.get("/v1/invoiceitems/{id}")
def retrieve_item(call: Call) -> Obj:
    return call.account.render(call.account.get("invoiceitem", call.path["id"]))


@router.delete("/v1/invoiceitems/{id}")
def delete_item(call: Call) -> Obj:
    account = call.account
    item = account.get("invoiceitem", call.path["id"])
    if item["invoice"] is not None:
        raise invalid("This invoice item is on an invoice and can no longer be deleted.")
    account.emit("invoiceitem.deleted", item, call.origin)
    account.remove(item["id"])
    return {"id": item["id"], "object": "invoiceitem", "deleted": True}


@router.get("/v1/invoiceitems")
def list_items(call: Call) -> Obj:
    account, params = call.account, call.params
    customer = text(params, "customer")
    invoice = text(params, "invoice")
    pending = boolean(params, "pending")
    found = account.all(
        "invoiceitem",
        lambda item: (
            (customer is None or item["customer"] == customer)
            and (invoice is None or item["invoice"] == invoice)
            and (pending is None or (item["invoice"] is None) == pending)
        ),
    )
    return page(found, params, "/v1/invoiceitems", account.render, label="invoiceitem")


@router.post("/v1/invoices")
def create_invoice(call: Call) -> Obj:
    account, params = call.account, call.params
    customer = account.get("customer", required_text(params, "customer"), "customer")
    collection = choice(
        params,
        "collection_method",
        ("charge_automatically", "send_invoice"),
        "charge_automatically",
    )
    assert collection is not None
    days = integer(params, "days_until_due")
    if collection == "send_invoice" and days is None and "due_date" not in params:
        raise invalid(
            "Missing required param: days_until_due or due_date (for send_invoice).",
            "days_until_due",
        )
    subscription_id = text(params, "subscription")
    subscription = (
        account.get("subscription", subscription_id, "subscription") if subscription_id else None
    )
    invoice = new_invoice(
        account,
        customer,
        billing_reason="manual",
        currency=text(params, "currency") or customer.get("currency") or "usd",
        subscription=subscription,
        collection_method=collection,
        days_until_due=days,
        auto_advance=bool(boolean(params, "auto_advance", False)),
        description=text(params, "description"),
    )
    apply_metadata(invoice["metadata"], params)
    behavior = choice(params, "pending_invoice_items_behavior", ("include", "exclude"), "exclude")
    if behavior == "include":
        pull_pending_items(account, invoice, subscription_id)
    if invoice["auto_advance"]:
        invoice["_finalize_at"] = account.now() + account.settings.finalize_delay
    publish(account, invoice, call.origin)
    return account.render(invoice)


@router.get("/v1/invoices/{id}")
def retrieve_invoice(call: Call) -> Obj:
    if call.path["id"] == "upcoming":
        raise StripeError(
            404, "GET /v1/invoices/upcoming was removed: use POST /v1/invoices/create_preview."
        )
    return call.account.render(call.account.get("invoice", call.path["id"]))


@router.get("/v1/invoices/{id}/lines")
def list_lines(call: Call) -> Obj:
    invoice = call.account.get("invoice", call.path["id"])
    return page(
        list(invoice["_lines"]),
        call.params,
        f"/v1/invoices/{invoice['id']}/lines",
        dict,
        label="line item",
    )


@router.post("/v1/invoices/{id}")
def update_invoice(call: Call) -> Obj:
    account, params = call.account, call.params
    invoice = account.get("invoice", call.path["id"])
    draft_only = ("description", "days_until_due", "collection_method", "footer")
    if invoice["status"] != "draft" and any(key in params for key in draft_only):
        raise invalid("Finalized invoices can't be updated in this way.")
    with account.updating(invoice, call.origin):
        if "description" in params:
            invoice["description"] = text(params, "description")
        if "footer" in params:
            invoice["footer"] = text(params, "footer")
        if "auto_advance" in params:
            invoice["auto_advance"] = bool(boolean(params, "auto_advance"))
            if invoice["status"] == "draft":
                invoice["_finalize_at"] = (
                    account.now() + account.settings.finalize_delay
                    if invoice["auto_advance"]
                    else None
                )
        if "days_until_due" in params:
            invoice["_days_until_due"] = integer(params, "days_until_due")
        if "default_payment_method" in params:
            invoice["default_payment_method"] = text(params, "default_payment_method")
        apply_metadata(invoice["metadata"], params)
    return account.render(invoice)


@router.delete("/v1/invoices/{id}")
def delete_invoice(call: Call) -> Obj:
    account = call.account
    invoice = account.get("invoice", call.path["id"])
    if invoice["status"] != "draft":
        raise invalid("You can only delete draft invoices.")
    for item in account.all("invoiceitem", lambda item: item["invoice"] == invoice["id"]):
        item["invoice"] = None
    account.emit("invoice.deleted", invoice, call.origin)
    account.remove(invoice["id"])
    return {"id": invoice["id"], "object": "invoice", "deleted": True}


@router.post("/v1/invoices/{id}/finalize")
def finalize_route(call: Call) -> Obj:
    account = call.account
    invoice = account.get("invoice", call.path["id"])
    auto = boolean(call.params, "auto_advance")
    if auto is not None:
        invoice["auto_advance"] = auto
    finalize(account, invoice, call.origin)
    if (
        invoice["status"] == "open"
        and invoice["auto_advance"]
        and invoice["collection_method"] == "charge_automatically"
    ):
        # Stripe attempts an auto-advancing invoice about an hour after finalisation.
        invoice["next_payment_attempt"] = account.now() + 3600
    return account.render(invoice)


@router.post("/v1/invoices/{id}/pay")
def pay_route(call: Call) -> Obj:
    account, params = call.account, call.params
    invoice = account.get("invoice", call.path["id"])
    if invoice["status"] == "draft":
        finalize(account, invoice, call.origin)
    if invoice["status"] == "paid":
        raise invalid("Invoice is already paid.", code="invoice_already_paid")
    if invoice["status"] not in ("open", "uncollectible"):
        raise invalid(f"This invoice can no longer be paid (it is {invoice['status']}).")
    if boolean(params, "paid_out_of_band"):
        mark_paid(account, invoice, call.origin, charged=False)
        return account.render(invoice)
    method_id = text(params, "payment_method")
    method = None
    if method_id is not None:
        method = payment_methods.resolve(account, method_id, call.origin)
    decline = attempt(account, invoice, call.origin, automatic=False, method=method)
    if decline == "no_payment_method":
        raise StripeError(
            400,
            "This customer has no attached payment source or default payment method. Please "
            "consider adding a default payment method.",
            code="invoice_no_customer_line_items"
            if invoice["total"] == 0
            else "invoice_no_payment_method_types",
            stored=True,
        )
    if decline is not None:
        raise card_declined(
            payment_methods.DECLINE_MESSAGES.get(decline, "Your card was declined."), decline
        )
    return account.render(invoice)


@router.post("/v1/invoices/{id}/void")
def void_route(call: Call) -> Obj:
    invoice = call.account.get("invoice", call.path["id"])
    void(call.account, invoice, call.origin)
    return call.account.render(invoice)


@router.post("/v1/invoices/{id}/mark_uncollectible")
def uncollectible_route(call: Call) -> Obj:
    invoice = call.account.get("invoice", call.path["id"])
    mark_uncollectible(call.account, invoice, call.origin)
    return call.account.render(invoice)


@router.post("/v1/invoices/{id}/send")
def send_route(call: Call) -> Obj:
    account = call.account
    invoice = account.get("invoice", call.path["id"])
    if invoice["status"] == "draft":
        finalize(account, invoice, call.origin)
    account.emit("invoice.sent", invoice, call.origin)
    return account.render(invoice)


@router.get("/v1/invoices")
def list_invoices(call: Call) -> Obj:
    account, params = call.account, call.params
    customer = text(params, "customer")
    subscription = text(params, "subscription")
    status = text(params, "status")
    found = account.all(
        "invoice",
        lambda invoice: (
            (customer is None or invoice["customer"] == customer)
            and (subscription is None or subscription_of(invoice) == subscription)
            and (status is None or invoice["status"] == status)
            and created_matches(params, invoice["created"])
        ),
    )
    return page(found, params, "/v1/invoices", account.render, label="invoice")


@router.post("/v1/invoices/create_preview")
def create_preview(call: Call) -> Obj:
    from emulators.stripe import subscriptions

    return subscriptions.preview(call.account, call.params)


@router.get("/v1/invoice_payments")
def list_invoice_payments(call: Call) -> Obj:
    account, params = call.account, call.params
    invoice = text(params, "invoice")
    found = account.all(
        "invoice_payment", lambda payment: invoice is None or payment["invoice"] == invoice
    )
    return page(found, params, "/v1/invoice_payments", account.render, label="invoice payment")


@router.get("/v1/invoice_payments/{id}")
def retrieve_invoice_payment(call: Call) -> Obj:
    return call.account.render(call.account.get("invoice_payment", call.path["id"]))


# -- hosted page and PDF -----------------------------------------------------------------------
def hosted_page(account: Account, invoice_id: str) -> str:
    invoice = account.get("invoice", invoice_id)
    rows = "".join(
        f"<tr><td>{html.escape(str(line['description']))}</td><td>{line['amount']}</td></tr>"
        for line in invoice["_lines"]
    )
    return (
        f"<html><head><title>Invoice {html.escape(str(invoice['number']))}</title></head><body>"
        f"<h1>Invoice {html.escape(str(invoice['number']))}</h1>"
        f"<p>Status: {invoice['status']}</p><p>Amount due: {invoice['amount_due']} "
        f"{invoice['currency']}</p><table>{rows}</table></body></html>"
    )


def pdf(account: Account, invoice_id: str) -> bytes:
    invoice = account.get("invoice", invoice_id)
    if invoice["status"] == "draft":
        raise StripeError(404, "Draft invoices have no PDF.")
    text_line = f"Invoice {invoice['number']} total {invoice['total']} {invoice['currency']}"
    stream = f"BT /F1 12 Tf 72 720 Td ({text_line}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)
