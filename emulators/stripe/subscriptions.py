"""Subscriptions and their items: create (trials, `billing_cycle_anchor`, payment behaviours),
update (quantities, price swaps, added and deleted items, `proration_behavior`,
`proration_date`, `billing_cycle_anchor=now`, `trial_end=now`, `cancel_at_period_end`),
cancel, renew (called by the clock), and the effect of invoice outcomes on the status.

Periods live on the subscription internally and are shown on each item
(`items.data[].current_period_start/end`, 2025-03-31.basil and later).
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime

from emulators.stripe import invoices, meters, payment_methods
from emulators.stripe.account import Account, public, renders
from emulators.stripe.catalog import plan_view
from emulators.stripe.errors import StripeError, card_declined, invalid, missing_param
from emulators.stripe.invoices import TIMES
from emulators.stripe.lists import created_matches, page
from emulators.stripe.params import (
    Params,
    apply_metadata,
    array,
    boolean,
    choice,
    integer,
    mapping,
    required_text,
    text,
)
from emulators.stripe.proration import line_amount, prorated
from emulators.stripe.routing import AUTOMATIC, Call, Obj, Origin, Router

router = Router()
DAY = 86400
INCOMPLETE_EXPIRY_S = 23 * 3600
TRIAL_NOTICE_S = 3 * DAY
ENDED = ("canceled", "incomplete_expired")
BEHAVIORS = ("create_prorations", "always_invoice", "none")


def shift(anchor: int, interval: str, count: int, periods: int) -> int:
    """`periods` billing periods after `anchor`, keeping the anchor's day of month (clamped)."""
    if interval == "day":
        return anchor + DAY * count * periods
    if interval == "week":
        return anchor + 7 * DAY * count * periods
    months = count * periods * (12 if interval == "year" else 1)
    moment = datetime.fromtimestamp(anchor, UTC)
    years, month_index = divmod(moment.month - 1 + months, 12)
    year, month = moment.year + years, month_index + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return int(moment.replace(year=year, month=month, day=day).timestamp())


def _date(instant: int) -> str:
    return datetime.fromtimestamp(instant, UTC).strftime("%d %b %Y")


# -- rendering ---------------------------------------------------------------------------------
@renders("subscription_item")
def render_item(account: Account, item: Obj) -> Obj:
    shown = public(item)
    price = account.objects[item["price"]]
    shown["price"] = account.render(price)
    shown["plan"] = plan_view(account, price)
    subscription = account.objects.get(item["subscription"])
    if subscription is not None:
        shown["current_period_start"] = subscription["_period_start"]
        shown["current_period_end"] = subscription["_period_end"]
    if price["recurring"]["usage_type"] == "metered":
        shown.pop("quantity", None)
    return dict(sorted(shown.items()))


@renders("subscription")
def render_subscription(account: Account, subscription: Obj) -> Obj:
    shown = public(subscription)
    items = [render_item(account, account.objects[item]) for item in subscription["_items"]]
    shown["items"] = {
        "object": "list",
        "data": items,
        "has_more": False,
        "total_count": len(items),
        "url": f"/v1/subscription_items?subscription={subscription['id']}",
    }
    return dict(sorted(shown.items()))


def items_of(account: Account, subscription: Obj) -> list[Obj]:
    return [account.objects[item] for item in subscription["_items"]]


def _price_of(account: Account, item: Obj) -> Obj:
    return account.objects[item["price"]]


def _product_name(account: Account, price: Obj) -> str:
    product = account.find(price["product"])
    return str(product["name"]) if product else str(price["product"])


def _bill_item(
    account: Account,
    invoice: Obj,
    subscription: Obj,
    item: Obj,
    *,
    price: Obj,
    name: str,
    amount: int,
    period: tuple[int, int],
    quantity: int | None = None,
    description: str | None = None,
) -> None:
    """One line on `invoice` billed straight from a subscription item (not an invoice item)."""
    invoices.add_line(
        account,
        invoice,
        invoices.subscription_line(
            subscription=subscription["id"],
            subscription_item=item["id"],
            price=price,
            product_name=name,
            quantity=item["quantity"] if quantity is None else quantity,
            amount=amount,
            period=period,
            description=description,
        ),
    )


def _licensed(price: Obj) -> bool:
    return bool(price["recurring"]) and price["recurring"]["usage_type"] == "licensed"


# -- creation ----------------------------------------------------------------------------------
def _checked_price(account: Account, spec: Params, param: str) -> Obj:
    price_id = text(spec, "price") or text(spec, "plan")
    if price_id is None:
        price_data = mapping(spec, "price_data")
        if not price_data:
            raise missing_param(f"{param}[price]")
        from emulators.stripe.catalog import new_price

        price = new_price(account, price_data, AUTOMATIC)
    else:
        price = account.get("price", price_id, f"{param}[price]")
    if price["recurring"] is None:
        raise invalid(
            "The price specified is set to `type=one_time` but this field only accepts prices "
            "with `type=recurring`.",
            f"{param}[price]",
        )
    if not price["active"]:
        raise invalid(f"The price specified is inactive: {price['id']}.", f"{param}[price]")
    return price


def _new_item(account: Account, subscription: Obj, price: Obj, spec: Params) -> Obj:
    item: Obj = {
        "id": account.new_id("si", 14),
        "object": "subscription_item",
        "created": account.now(),
        "discounts": [],
        "metadata": {},
        "price": price["id"],
        "quantity": integer(spec, "quantity", 1),
        "subscription": subscription["id"],
        "tax_rates": [],
    }
    apply_metadata(item["metadata"], spec)
    account.add(item)
    subscription["_items"].append(item["id"])
    return item


def _check_cadence(account: Account, prices: list[Obj]) -> None:
    cadences = {
        (price["currency"], price["recurring"]["interval"], price["recurring"]["interval_count"])
        for price in prices
    }
    if len(cadences) > 1:
        raise invalid(
            "All prices on a subscription must have the same `currency` and `recurring.interval`.",
            "items",
        )


def _default_method(account: Account, customer: Obj, method_id: str | None) -> Obj | None:
    chosen = method_id or customer["invoice_settings"]["default_payment_method"]
    return account.find(chosen) if chosen else None


@router.post("/v1/subscriptions")
def create(call: Call) -> Obj:  # noqa: PLR0912, PLR0915 - one pass over Stripe's options
    account, params, origin = call.account, call.params, call.origin
    customer = account.get("customer", required_text(params, "customer"), "customer")
    specs = array(params, "items")
    if not specs:
        raise missing_param("items")
    prices = [_checked_price(account, spec, f"items[{i}]") for i, spec in enumerate(specs)]
    _check_cadence(account, prices)
    method_id = text(params, "default_payment_method")
    if method_id is not None:
        method = account.get("payment_method", method_id, "default_payment_method")
        if method["customer"] != customer["id"]:
            raise invalid(
                "The customer does not have a payment method with the ID "
                f"{method_id}. The payment method must be attached to the customer.",
                "default_payment_method",
            )
    behavior = choice(
        params,
        "payment_behavior",
        ("allow_incomplete", "default_incomplete", "error_if_incomplete", "pending_if_incomplete"),
        "allow_incomplete",
    )
    collection = choice(
        params,
        "collection_method",
        ("charge_automatically", "send_invoice"),
        "charge_automatically",
    )
    now = account.now()
    trial_end: int | None = None
    given_trial = params.get("trial_end")
    if given_trial == "now":
        trial_end = None
    elif given_trial:
        trial_end = integer(params, "trial_end")
    elif integer(params, "trial_period_days"):
        trial_end = now + DAY * (integer(params, "trial_period_days") or 0)
    elif boolean(params, "trial_from_plan") and prices[0]["recurring"]["trial_period_days"]:
        trial_end = now + DAY * prices[0]["recurring"]["trial_period_days"]
    if trial_end is not None and trial_end <= now:
        raise invalid(
            "Invalid timestamp: must be an integer Unix timestamp in the future.", "trial_end"
        )
    recurring = prices[0]["recurring"]
    interval, count = recurring["interval"], recurring["interval_count"]
    anchor_param = integer(params, "billing_cycle_anchor")
    if anchor_param is not None and anchor_param <= now:
        raise invalid("billing_cycle_anchor must be in the future.", "billing_cycle_anchor")
    if trial_end is not None:
        anchor, cycle, period_end = trial_end, 0, trial_end
    elif anchor_param is not None:
        anchor, cycle, period_end = anchor_param, 0, anchor_param
    else:
        anchor, cycle = now, 1
        period_end = shift(now, interval, count, 1)
    if (
        collection == "charge_automatically"
        and behavior == "error_if_incomplete"
        and trial_end is None
    ):
        decline = payment_methods.charge_outcome(_default_method(account, customer, method_id))
        if decline is not None:
            if decline == "no_payment_method":
                raise invalid(
                    "This customer has no attached payment source or default payment method.",
                    code="resource_missing",
                )
            raise card_declined(
                payment_methods.DECLINE_MESSAGES.get(decline, "Your card was declined."), decline
            )
    subscription: Obj = {
        "id": account.new_id("sub", 24),
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": anchor,
        "billing_cycle_anchor_config": None,
        "billing_mode": {"type": "classic"},
        "cancel_at": integer(params, "cancel_at"),
        "cancel_at_period_end": bool(boolean(params, "cancel_at_period_end", False)),
        "canceled_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": collection,
        "created": now,
        "currency": prices[0]["currency"],
        "customer": customer["id"],
        "days_until_due": integer(params, "days_until_due"),
        "default_payment_method": method_id,
        "default_source": None,
        "default_tax_rates": [],
        "description": text(params, "description"),
        "discounts": [],
        "ended_at": None,
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
        "latest_invoice": None,
        "livemode": False,
        "metadata": {},
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "start_date": now,
        "status": "trialing" if trial_end is not None else "incomplete",
        "test_clock": None,
        "transfer_data": None,
        "trial_end": trial_end,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": now if trial_end is not None else None,
        "_anchor": anchor,
        "_cycle": cycle,
        "_interval": interval,
        "_interval_count": count,
        "_items": [],
        "_period_start": now,
        "_period_end": period_end,
        "_trial_notice_sent": False,
    }
    apply_metadata(subscription["metadata"], params)
    account.add(subscription)
    for spec, price in zip(specs, prices, strict=True):
        _new_item(account, subscription, price, spec)
    invoice = invoices.new_invoice(
        account,
        customer,
        billing_reason="subscription_create",
        currency=subscription["currency"],
        subscription=subscription,
        collection_method=collection or "charge_automatically",
        days_until_due=subscription["days_until_due"],
        period=(now, now),
    )
    for item in items_of(account, subscription):
        price = _price_of(account, item)
        if not _licensed(price):
            continue
        full = line_amount(price["unit_amount_decimal"], item["quantity"])
        name = _product_name(account, price)
        if trial_end is not None:
            amount, description = 0, f"Trial period for {name}"
        elif anchor_param is not None:
            previous_anchor = shift(anchor_param, interval, count, -1)
            amount = prorated(full, previous_anchor, anchor_param, now)
            description = f"Remaining time on {item['quantity']} {TIMES} {name} after {_date(now)}"
        else:
            amount, description = int(full), None  # the default: "<quantity> TIMES <product>"
        _bill_item(
            account,
            invoice,
            subscription,
            item,
            price=price,
            name=name,
            amount=amount,
            period=(now, period_end),
            description=description,
        )
    for extra in array(params, "add_invoice_items"):
        price = account.get("price", required_text(extra, "price"), "add_invoice_items[price]")
        quantity = integer(extra, "quantity", 1) or 1
        invoices.new_item(
            account,
            customer,
            amount=int(line_amount(price["unit_amount_decimal"], quantity)),
            currency=price["currency"],
            description=_product_name(account, price),
            origin=origin,
            price=price,
            quantity=quantity,
            subscription=subscription["id"],
        )
    invoices.pull_pending_items(account, invoice, subscription["id"])
    subscription["latest_invoice"] = invoice["id"]
    account.emit("customer.subscription.created", subscription, origin)
    invoices.publish(account, invoice, origin)
    if collection == "send_invoice":
        with account.updating(subscription, origin):
            if subscription["status"] == "incomplete":
                subscription["status"] = "active"
        invoices.finalize(account, invoice, origin)
    elif behavior == "default_incomplete":
        invoices.finalize(account, invoice, origin)
    else:
        invoices.finalize(account, invoice, origin)
        if invoice["status"] == "open":
            invoices.attempt(account, invoice, origin, automatic=True)
    return account.render(subscription)


# -- invoice outcomes --------------------------------------------------------------------------
def invoice_paid(account: Account, invoice: Obj, origin: Origin) -> None:
    subscription_id = invoices.subscription_of(invoice)
    subscription = account.find(subscription_id) if subscription_id else None
    if subscription is None or subscription["status"] not in ("incomplete", "past_due", "unpaid"):
        return
    still_open = account.all(
        "invoice",
        lambda other: (
            invoices.subscription_of(other) == subscription["id"]
            and other["status"] == "open"
            and other["id"] != invoice["id"]
        ),
    )
    if still_open:
        return
    with account.updating(subscription, origin):
        subscription["status"] = "active"


def invoice_failed(account: Account, invoice: Obj, origin: Origin, *, final: bool) -> None:
    subscription_id = invoices.subscription_of(invoice)
    subscription = account.find(subscription_id) if subscription_id else None
    if subscription is None or subscription["status"] in ENDED:
        return
    if invoice["billing_reason"] == "subscription_create":
        return  # stays incomplete; the first invoice is not retried
    outcome = account.settings.dunning.subscription_status
    if final and outcome == "canceled":
        cancel_now(account, subscription, origin, reason="payment_failed")
        return
    with account.updating(subscription, origin):
        if final and outcome == "unpaid":
            subscription["status"] = "unpaid"
        elif subscription["status"] in ("active", "trialing"):
            subscription["status"] = "past_due"


def invoice_voided(account: Account, invoice: Obj, origin: Origin) -> None:
    subscription_id = invoices.subscription_of(invoice)
    subscription = account.find(subscription_id) if subscription_id else None
    if subscription is None:
        return
    if (
        subscription["status"] == "incomplete"
        and invoice["billing_reason"] == "subscription_create"
    ):
        with account.updating(subscription, origin):
            subscription["status"] = "incomplete_expired"
            subscription["ended_at"] = account.now()
        return
    if subscription["status"] in ("past_due", "unpaid"):
        invoice_paid(account, invoice, origin)


# -- updates -----------------------------------------------------------------------------------
def _proration_items(
    account: Account,
    subscription: Obj,
    changes: list[tuple[Obj | None, Obj | None]],
    at: int,
    origin: Origin,
) -> list[Obj]:
    """Credit the unused time of each old (price, quantity) and charge the remaining time of
    each new one, as pending invoice items."""
    customer = account.get("customer", subscription["customer"])
    start, end = subscription["_period_start"], subscription["_period_end"]
    made = []
    for old, new in changes:
        for side, sign in ((old, -1), (new, 1)):
            if side is None or not _licensed(side["price"]):
                continue
            price = side["price"]
            amount = prorated(
                line_amount(price["unit_amount_decimal"], side["quantity"]), start, end, at
            )
            verb = "Unused" if sign < 0 else "Remaining"
            made.append(
                invoices.new_item(
                    account,
                    customer,
                    amount=sign * amount,
                    currency=price["currency"],
                    description=f"{verb} time on {side['quantity']} {TIMES} "
                    f"{_product_name(account, price)} after {_date(at)}",
                    origin=origin,
                    price=price,
                    quantity=side["quantity"],
                    period=(at, end),
                    subscription=subscription["id"],
                    subscription_item=side["item"],
                    proration=True,
                )
            )
    return made


def update_subscription(  # noqa: PLR0912, PLR0915 - one pass over Stripe's options
    account: Account, subscription: Obj, params: Params, origin: Origin, *, collect: bool = True
) -> Obj | None:
    """Apply an update; returns the invoice it raised at once (always_invoice, a reset cycle)."""
    if subscription["status"] in ENDED:
        raise invalid(
            "A canceled subscription can only update its cancellation_details and metadata."
        )
    now = account.now()
    behavior = choice(params, "proration_behavior", BEHAVIORS, "create_prorations")
    at = integer(params, "proration_date", now)
    assert at is not None
    start, end = subscription["_period_start"], subscription["_period_end"]
    if "proration_date" in params and not start <= at <= end:
        raise invalid(
            "proration_date must be within the subscription's current period.", "proration_date"
        )
    customer = account.get("customer", subscription["customer"])
    changes: list[tuple[Obj | None, Obj | None]] = []
    before_items = {
        item["id"]: {
            "item": item["id"],
            "price": _price_of(account, item),
            "quantity": item["quantity"],
        }
        for item in items_of(account, subscription)
    }
    reset = params.get("billing_cycle_anchor") == "now"
    trial_ends_now = params.get("trial_end") == "now" and subscription["status"] == "trialing"
    with account.updating(subscription, origin):
        for index, spec in enumerate(array(params, "items")):
            item_id = text(spec, "id")
            if item_id is not None:
                item = account.get("subscription_item", item_id, f"items[{index}][id]")
                if item["subscription"] != subscription["id"]:
                    raise invalid(
                        f"The subscription item {item_id} does not belong to this subscription.",
                        f"items[{index}][id]",
                    )
                old = before_items[item_id]
                if boolean(spec, "deleted"):
                    subscription["_items"].remove(item_id)
                    account.remove(item_id)
                    changes.append((old, None))
                    continue
                if "price" in spec or "plan" in spec:
                    item["price"] = _checked_price(account, spec, f"items[{index}]")["id"]
                if "quantity" in spec:
                    item["quantity"] = integer(spec, "quantity")
                apply_metadata(item["metadata"], spec)
                new = {
                    "item": item_id,
                    "price": _price_of(account, item),
                    "quantity": item["quantity"],
                }
                if (new["price"]["id"], new["quantity"]) != (old["price"]["id"], old["quantity"]):
                    changes.append((old, new))
            else:
                price = _checked_price(account, spec, f"items[{index}]")
                item = _new_item(account, subscription, price, spec)
                changes.append(
                    (None, {"item": item["id"], "price": price, "quantity": item["quantity"]})
                )
        if not subscription["_items"]:
            raise invalid("A subscription must have at least one item.", "items")
        prices = [_price_of(account, item) for item in items_of(account, subscription)]
        _check_cadence(account, prices)
        recurring = prices[0]["recurring"]
        if (recurring["interval"], recurring["interval_count"]) != (
            subscription["_interval"],
            subscription["_interval_count"],
        ):
            reset = True
            subscription["_interval"] = recurring["interval"]
            subscription["_interval_count"] = recurring["interval_count"]
        if "cancel_at_period_end" in params:
            subscription["cancel_at_period_end"] = bool(boolean(params, "cancel_at_period_end"))
            if subscription["cancel_at_period_end"]:
                subscription["cancellation_details"]["reason"] = "cancellation_requested"
            else:
                subscription["cancellation_details"]["reason"] = None
        if "cancel_at" in params:
            subscription["cancel_at"] = integer(params, "cancel_at")
        if "default_payment_method" in params:
            method_id = text(params, "default_payment_method")
            if method_id is not None:
                method = account.get("payment_method", method_id, "default_payment_method")
                if method["customer"] != customer["id"]:
                    raise invalid(
                        "The payment method must be attached to the customer.",
                        "default_payment_method",
                    )
            subscription["default_payment_method"] = method_id
        if "description" in params:
            subscription["description"] = text(params, "description")
        details = mapping(params, "cancellation_details")
        for key in ("comment", "feedback"):
            if key in details:
                subscription["cancellation_details"][key] = details[key] or None
        apply_metadata(subscription["metadata"], params)
        if trial_ends_now:
            subscription["trial_end"] = now
            subscription["status"] = "active"
            reset = True
        elif params.get("trial_end") not in (None, "", "now"):
            new_trial = integer(params, "trial_end")
            assert new_trial is not None
            subscription["trial_end"] = new_trial
            subscription["status"] = "trialing"
            subscription["_anchor"], subscription["_cycle"] = new_trial, 0
            subscription["_period_end"] = new_trial
        if reset:
            subscription["billing_cycle_anchor"] = now
            subscription["_anchor"], subscription["_cycle"] = now, 1
            subscription["_period_start"] = now
            subscription["_period_end"] = shift(
                now, subscription["_interval"], subscription["_interval_count"], 1
            )
    prorate = (
        behavior != "none"
        and subscription["status"] in ("active", "past_due")
        and not trial_ends_now
    )
    if reset:
        if prorate:
            credits: list[tuple[Obj | None, Obj | None]] = [
                (old, None) for old in before_items.values()
            ]
            saved = (subscription["_period_start"], subscription["_period_end"])
            subscription["_period_start"], subscription["_period_end"] = start, end
            _proration_items(account, subscription, credits, at, origin)
            subscription["_period_start"], subscription["_period_end"] = saved
        return _invoice_now(
            account, subscription, origin, with_period_charges=True, collect=collect
        )
    if prorate and changes:
        _proration_items(account, subscription, changes, at, origin)
        if behavior == "always_invoice":
            return _invoice_now(
                account, subscription, origin, with_period_charges=False, collect=collect
            )
    return None


def _invoice_now(
    account: Account, subscription: Obj, origin: Origin, *, with_period_charges: bool, collect: bool
) -> Obj:
    customer = account.get("customer", subscription["customer"])
    invoice = invoices.new_invoice(
        account,
        customer,
        billing_reason="subscription_update",
        currency=subscription["currency"],
        subscription=subscription,
        collection_method=subscription["collection_method"],
        days_until_due=subscription["days_until_due"],
    )
    if with_period_charges:
        _period_lines(account, subscription, invoice)
    invoices.pull_pending_items(account, invoice, subscription["id"])
    with account.updating(subscription, origin):
        subscription["latest_invoice"] = invoice["id"]
    invoices.publish(account, invoice, origin)
    if collect:
        invoices.finalize_and_collect(account, invoice, origin)
    return invoice


def _period_lines(account: Account, subscription: Obj, invoice: Obj) -> None:
    """Licensed items charged in advance for the current period."""
    for item in items_of(account, subscription):
        price = _price_of(account, item)
        if not _licensed(price):
            continue
        _bill_item(
            account,
            invoice,
            subscription,
            item,
            price=price,
            name=_product_name(account, price),
            amount=int(line_amount(price["unit_amount_decimal"], item["quantity"])),
            period=(subscription["_period_start"], subscription["_period_end"]),
        )


def _usage_lines(account: Account, subscription: Obj, invoice: Obj, start: int, end: int) -> None:
    """Metered items billed in arrears from their meter's events in [start, end)."""
    for item in items_of(account, subscription):
        price = _price_of(account, item)
        if price["recurring"]["usage_type"] != "metered":
            continue
        usage = meters.usage(
            account, price["recurring"]["meter"], subscription["customer"], start, end
        )
        amount = prorated(line_amount(price["unit_amount_decimal"], 1) * usage, 0, 1, 0)
        name = _product_name(account, price)
        _bill_item(
            account,
            invoice,
            subscription,
            item,
            price=price,
            name=name,
            amount=amount,
            period=(start, end),
            quantity=int(usage),
            description=f"{usage.normalize():f} {TIMES} {name}",
        )


@router.post("/v1/subscriptions/{id}")
def update(call: Call) -> Obj:
    account = call.account
    subscription = account.get("subscription", call.path["id"])
    update_subscription(account, subscription, call.params, call.origin)
    return account.render(subscription)


# -- cancellation and renewal ------------------------------------------------------------------
def cancel_now(
    account: Account,
    subscription: Obj,
    origin: Origin,
    *,
    reason: str = "cancellation_requested",
    prorate: bool = False,
    invoice_now: bool = False,
) -> None:
    now = account.now()
    start = subscription["_period_start"]
    was_billed = subscription["status"] in ("active", "past_due", "unpaid")
    subscription["status"] = "canceled"
    subscription["canceled_at"] = now
    subscription["ended_at"] = now
    subscription["cancellation_details"]["reason"] = reason
    for invoice in account.all(
        "invoice",
        lambda inv: (
            invoices.subscription_of(inv) == subscription["id"]
            and inv["next_payment_attempt"] is not None
        ),
    ):
        with account.updating(invoice, origin):
            invoice["next_payment_attempt"] = None
    account.emit("customer.subscription.deleted", subscription, origin)
    if prorate and was_billed:
        credits: list[tuple[Obj | None, Obj | None]] = [
            (
                {
                    "item": item["id"],
                    "price": _price_of(account, item),
                    "quantity": item["quantity"],
                },
                None,
            )
            for item in items_of(account, subscription)
        ]
        _proration_items(account, subscription, credits, now, origin)
    if invoice_now:
        customer = account.get("customer", subscription["customer"])
        invoice = invoices.new_invoice(
            account,
            customer,
            billing_reason="subscription_cycle",
            currency=subscription["currency"],
            subscription=subscription,
            period=(start, now),
        )
        _usage_lines(account, subscription, invoice, start, now)
        invoices.pull_pending_items(account, invoice, subscription["id"])
        invoices.publish(account, invoice, origin)
        invoices.finalize_and_collect(account, invoice, origin)


@router.delete("/v1/subscriptions/{id}")
def cancel(call: Call) -> Obj:
    account, params = call.account, call.params
    subscription = account.get("subscription", call.path["id"])
    if subscription["status"] in ENDED:
        raise invalid(
            f"A canceled subscription can't be canceled again: {subscription['id']}.",
            code="resource_missing",
        )
    details = mapping(params, "cancellation_details")
    for key in ("comment", "feedback"):
        if key in details:
            subscription["cancellation_details"][key] = details[key] or None
    cancel_now(
        account,
        subscription,
        call.origin,
        prorate=bool(boolean(params, "prorate", False)),
        invoice_now=bool(boolean(params, "invoice_now", False)),
    )
    return account.render(subscription)


def renew(
    account: Account, subscription: Obj, origin: Origin = AUTOMATIC, *, collect: bool = True
) -> Obj | None:
    """The period ends: cancel if asked to, else start the next period and raise its invoice."""
    if subscription["cancel_at_period_end"]:
        cancel_now(account, subscription, origin)
        return None
    customer = account.get("customer", subscription["customer"])
    old_start, old_end = subscription["_period_start"], subscription["_period_end"]
    was_trial = subscription["status"] == "trialing"
    invoice = invoices.new_invoice(
        account,
        customer,
        billing_reason="subscription_cycle",
        currency=subscription["currency"],
        subscription=subscription,
        collection_method=subscription["collection_method"],
        days_until_due=subscription["days_until_due"],
        period=(old_start, old_end),
    )
    with account.updating(subscription, origin):
        subscription["_cycle"] += 1
        subscription["_period_start"] = old_end
        subscription["_period_end"] = shift(
            subscription["_anchor"],
            subscription["_interval"],
            subscription["_interval_count"],
            subscription["_cycle"],
        )
        if was_trial:
            subscription["status"] = "active"
        subscription["latest_invoice"] = invoice["id"]
    _period_lines(account, subscription, invoice)
    if not was_trial:
        _usage_lines(account, subscription, invoice, old_start, old_end)
    invoices.pull_pending_items(account, invoice, subscription["id"])
    invoices.publish(account, invoice, origin)
    if not collect:
        return invoice
    if account.settings.finalize_delay <= 0:
        invoices.finalize_and_collect(account, invoice, origin)
    else:
        invoice["_finalize_at"] = account.now() + account.settings.finalize_delay
    return invoice


def expire_incomplete(account: Account, subscription: Obj) -> None:
    latest = account.find(subscription["latest_invoice"] or "")
    if latest is not None and latest["status"] == "open":
        invoices.void(account, latest, AUTOMATIC)  # sets incomplete_expired
    if subscription["status"] == "incomplete":
        with account.updating(subscription, AUTOMATIC):
            subscription["status"] = "incomplete_expired"
            subscription["ended_at"] = account.now()


# -- reads -------------------------------------------------------------------------------------
@router.get("/v1/subscriptions/{id}")
def retrieve(call: Call) -> Obj:
    return call.account.render(call.account.get("subscription", call.path["id"]))


@router.get("/v1/subscriptions")
def list_subscriptions(call: Call) -> Obj:
    account, params = call.account, call.params
    customer = text(params, "customer")
    status = text(params, "status")
    price = text(params, "price")

    def wanted(subscription: Obj) -> bool:
        if customer and subscription["customer"] != customer:
            return False
        if status is None and subscription["status"] in ENDED:
            return False
        if status not in (None, "all") and subscription["status"] != status:
            return False
        if price and price not in [item["price"] for item in items_of(account, subscription)]:
            return False
        return created_matches(params, subscription["created"])

    return page(
        account.all("subscription", wanted),
        params,
        "/v1/subscriptions",
        account.render,
        label="subscription",
    )


# -- subscription items ------------------------------------------------------------------------
def _item_update(call: Call, spec: Params) -> Obj:
    account, params = call.account, call.params
    item = account.get("subscription_item", call.path["id"])
    subscription = account.get("subscription", item["subscription"])
    update_params: Params = {
        key: params[key] for key in ("proration_behavior", "proration_date") if key in params
    }
    update_params["items"] = [{"id": item["id"], **spec}]
    update_subscription(account, subscription, update_params, call.origin)
    return item


@router.post("/v1/subscription_items/{id}")
def update_item(call: Call) -> Obj:
    spec: Params = {
        key: call.params[key]
        for key in ("price", "plan", "quantity", "metadata")
        if key in call.params
    }
    item = _item_update(call, spec)
    return call.account.render(item)


@router.delete("/v1/subscription_items/{id}")
def delete_item(call: Call) -> Obj:
    item = call.account.get("subscription_item", call.path["id"])
    _item_update(call, {"deleted": "true"})
    return {"id": item["id"], "object": "subscription_item", "deleted": True}


@router.post("/v1/subscription_items")
def create_item(call: Call) -> Obj:
    account, params = call.account, call.params
    subscription = account.get(
        "subscription", required_text(params, "subscription"), "subscription"
    )
    spec = {key: params[key] for key in ("price", "plan", "quantity", "metadata") if key in params}
    update_params: Params = {
        key: params[key] for key in ("proration_behavior", "proration_date") if key in params
    }
    update_params["items"] = [spec]
    update_subscription(account, subscription, update_params, call.origin)
    return account.render(account.objects[subscription["_items"][-1]])


@router.get("/v1/subscription_items/{id}")
def retrieve_item(call: Call) -> Obj:
    return call.account.render(call.account.get("subscription_item", call.path["id"]))


@router.get("/v1/subscription_items")
def list_items(call: Call) -> Obj:
    account = call.account
    subscription = account.get(
        "subscription", required_text(call.params, "subscription"), "subscription"
    )
    found = list(reversed(items_of(account, subscription)))
    return page(
        found,
        call.params,
        f"/v1/subscription_items?subscription={subscription['id']}",
        account.render,
    )


# -- preview -----------------------------------------------------------------------------------
def preview(account: Account, params: Params) -> Obj:  # noqa: PLR0912
    """`POST /v1/invoices/create_preview`: the invoice a change (or the next renewal) would
    produce, computed on a copy of the state and thrown away."""
    subscription_id = text(params, "subscription")
    customer_id = text(params, "customer")
    details = mapping(params, "subscription_details")
    with account.dry_run():
        invoice: Obj | None
        if subscription_id is not None:
            subscription = account.get("subscription", subscription_id, "subscription")
            update_params: Params = {}
            if "items" in details:
                update_params["items"] = details["items"]
            for key in (
                "proration_date",
                "proration_behavior",
                "billing_cycle_anchor",
                "cancel_at_period_end",
                "trial_end",
                "default_payment_method",
            ):
                if key in details:
                    update_params[key] = details[key]
            if "subscription_proration_date" in params:
                update_params["proration_date"] = params["subscription_proration_date"]
            invoice = None
            if update_params:
                invoice = update_subscription(
                    account, subscription, update_params, AUTOMATIC, collect=False
                )
            if invoice is None:
                if subscription["cancel_at_period_end"] or subscription["status"] in ENDED:
                    raise StripeError(
                        404,
                        "No upcoming invoices for customer: the subscription will not renew.",
                        code="invoice_upcoming_none",
                    )
                invoice = renew(account, subscription, collect=False)
        elif customer_id is not None:
            customer = account.get("customer", customer_id, "customer")
            if details.get("items"):
                call = Call(
                    account,
                    {
                        "customer": customer_id,
                        "items": details["items"],
                        "payment_behavior": "default_incomplete",
                    },
                )
                created = create(call)
                invoice = account.objects[created["latest_invoice"]]
            else:
                invoice = invoices.new_invoice(
                    account,
                    customer,
                    billing_reason="upcoming",
                    currency=customer.get("currency") or "usd",
                )
                invoices.pull_pending_items(account, invoice, None)
                if not invoice["_lines"]:
                    raise StripeError(
                        404,
                        f"No upcoming invoices for customer: {customer_id}",
                        code="invoice_upcoming_none",
                    )
        else:
            raise missing_param("customer")
        assert invoice is not None
        shown = account.render(invoice)
    shown["id"] = f"upcoming_{invoice['id']}"
    shown["status"] = "draft"
    shown["number"] = None
    shown["hosted_invoice_url"] = None
    shown["invoice_pdf"] = None
    shown["amount_due"] = max(0, shown["total"])
    shown["amount_remaining"] = shown["amount_due"]
    shown["amount_paid"] = 0
    return shown
