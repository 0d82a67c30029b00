"""Customer portal sessions, and control endpoints that do what a customer does in the portal.

`POST /v1/billing_portal/sessions` returns a session whose `url` is an emulator page. What the
customer would click is `POST /_emulator/portal/<session>/<action>` with a JSON body:
`cancel_subscription` (`subscription`, `at_period_end` default true, `feedback`, `comment`),
`switch_price` (`subscription`, `price`, optional `quantity`, `proration_behavior`),
`update_quantity` (`subscription`, `quantity`), `update_payment_method` (`payment_method`, a
test token such as `pm_card_visa`: attached and made the invoice default), `update_customer`
(`email`, `name`, `phone`, `address`). The changes emit the ordinary events, with a request id
and no idempotency key, as Stripe's portal does.
"""

from __future__ import annotations

import html
from typing import Any

from emulators.stripe import payment_methods, subscriptions
from emulators.stripe.account import Account
from emulators.stripe.errors import StripeError, invalid, missing_param, no_such
from emulators.stripe.params import mapping, required_text, text
from emulators.stripe.routing import Call, Obj, Origin, Router

router = Router()
SESSION_TTL_S = 3600


def _configuration(account: Account) -> Obj:
    found = account.all("billing_portal.configuration")
    if found:
        return found[0]
    now = account.now()
    configuration: Obj = {
        "id": account.new_id("bpc", 24),
        "object": "billing_portal.configuration",
        "active": True,
        "created": now,
        "default_return_url": None,
        "features": {
            "customer_update": {"enabled": True, "allowed_updates": ["email", "address", "phone"]},
            "invoice_history": {"enabled": True},
            "payment_method_update": {"enabled": True},
            "subscription_cancel": {"enabled": True, "mode": "at_period_end"},
            "subscription_update": {"enabled": True, "proration_behavior": "create_prorations"},
        },
        "is_default": True,
        "livemode": False,
        "metadata": {},
        "updated": now,
    }
    return account.add(configuration)


@router.post("/v1/billing_portal/sessions")
def create_session(call: Call) -> Obj:
    account, params = call.account, call.params
    customer = account.get("customer", required_text(params, "customer"), "customer")
    configuration_id = text(params, "configuration") or _configuration(account)["id"]
    account.get("billing_portal.configuration", configuration_id, "configuration")
    session_id = account.new_id("bps", 24)
    flow = mapping(params, "flow_data")
    session: Obj = {
        "id": session_id,
        "object": "billing_portal.session",
        "configuration": configuration_id,
        "created": account.now(),
        "customer": customer["id"],
        "flow": flow or None,
        "livemode": False,
        "locale": text(params, "locale"),
        "on_behalf_of": text(params, "on_behalf_of"),
        "return_url": text(params, "return_url"),
        "url": f"{account.base_url}/_emulator/portal/{session_id}",
    }
    account.created(session, call.origin)
    return account.render(session)


def _session(account: Account, session_id: str) -> Obj:
    session = account.find(session_id)
    if session is None or session.get("object") != "billing_portal.session":
        raise no_such("billing portal session", session_id)
    if account.now() - session["created"] > SESSION_TTL_S:
        raise StripeError(410, "This portal session has expired.", code="session_expired")
    return session


def _own_subscription(account: Account, session: Obj, body: dict[str, Any]) -> Obj:
    subscription_id = text(body, "subscription")
    if subscription_id is None:
        raise missing_param("subscription")
    subscription = account.get("subscription", subscription_id, "subscription")
    if subscription["customer"] != session["customer"]:
        raise no_such("subscription", subscription_id, "subscription")
    return subscription


def act(  # noqa: PLR0912 - one branch per portal action
    account: Account, session_id: str, action: str, body: dict[str, Any]
) -> Obj:
    """Perform one portal action for the session's customer."""
    session = _session(account, session_id)
    origin = Origin(account.new_id("req", 14), None)
    body = {
        key: (str(value).lower() if isinstance(value, bool) else value)
        for key, value in body.items()
    }
    if isinstance(body.get("quantity"), int):
        body["quantity"] = str(body["quantity"])
    customer = account.get("customer", session["customer"])
    if action == "cancel_subscription":
        subscription = _own_subscription(account, session, body)
        if body.get("at_period_end", "true") == "true":
            params: dict[str, Any] = {"cancel_at_period_end": "true"}
            details = {key: body[key] for key in ("feedback", "comment") if key in body}
            if details:
                params["cancellation_details"] = details
            subscriptions.update_subscription(account, subscription, params, origin)
        else:
            subscriptions.cancel_now(account, subscription, origin)
        return account.render(subscription)
    if action in ("switch_price", "update_quantity"):
        subscription = _own_subscription(account, session, body)
        items = subscriptions.items_of(account, subscription)
        if len(items) != 1:
            raise invalid("The portal can only change subscriptions with one item.")
        spec: dict[str, Any] = {"id": items[0]["id"]}
        if action == "switch_price":
            spec["price"] = required_text(body, "price")
        if "quantity" in body:
            spec["quantity"] = body["quantity"]
        elif action == "update_quantity":
            raise missing_param("quantity")
        behavior = body.get("proration_behavior", "create_prorations")
        subscriptions.update_subscription(
            account, subscription, {"items": [spec], "proration_behavior": behavior}, origin
        )
        return account.render(subscription)
    if action == "update_payment_method":
        method = payment_methods.attach(
            account, required_text(body, "payment_method"), customer, origin
        )
        with account.updating(customer, origin):
            customer["invoice_settings"]["default_payment_method"] = method["id"]
        return account.render(method)
    if action == "update_customer":
        with account.updating(customer, origin):
            for key in ("email", "name", "phone"):
                if key in body:
                    customer[key] = body[key] or None
            if isinstance(body.get("address"), dict):
                customer["address"] = {
                    key: body["address"].get(key)
                    for key in ("city", "country", "line1", "line2", "postal_code", "state")
                }
        return account.render(customer)
    raise StripeError(404, f"Unknown portal action: {action}")


def page(account: Account, session_id: str) -> str:
    session = _session(account, session_id)
    customer = account.get("customer", session["customer"])
    rows = "".join(
        f"<li>{html.escape(sub['id'])}: {html.escape(sub['status'])}</li>"
        for sub in account.all("subscription", lambda sub: sub["customer"] == customer["id"])
    )
    return (
        f"<html><head><title>Billing portal</title></head><body><h1>"
        f"{html.escape(str(customer.get('name') or customer['id']))}</h1><ul>{rows}</ul>"
        f"<p>Actions: POST /_emulator/portal/{html.escape(session_id)}/&lt;action&gt;</p>"
        f"</body></html>"
    )
