"""Payment methods from Stripe's test tokens; attach, detach, update, list; the charge outcome
of each test card.

`pm_card_visa` and the other `pm_card_*` tokens (and `tok_*` through `card[token]`) make a new
card PaymentMethod when used, as on Stripe. `pm_card_chargeCustomerFail` attaches but every
charge fails; `pm_card_chargeDeclined` is declined when attached.
"""

from __future__ import annotations

from dataclasses import dataclass

from emulators.stripe.account import Account
from emulators.stripe.errors import StripeError, card_declined, invalid, missing_param
from emulators.stripe.lists import page
from emulators.stripe.params import apply_metadata, choice, integer, mapping, required_text, text
from emulators.stripe.routing import Call, Obj, Origin, Router

router = Router()


@dataclass(frozen=True)
class TestCard:
    brand: str
    last4: str
    funding: str = "credit"
    country: str = "US"
    attach_decline: str | None = None  # decline code when attached
    charge_decline: str | None = None  # decline code of every charge


TEST_CARDS = {
    "visa": TestCard("visa", "4242"),
    "visa_debit": TestCard("visa", "5556", funding="debit"),
    "mastercard": TestCard("mastercard", "4444"),
    "amex": TestCard("amex", "8431"),
    "discover": TestCard("discover", "1117"),
    "chargeCustomerFail": TestCard("visa", "0341", charge_decline="generic_decline"),
    "chargeDeclined": TestCard("visa", "0002", attach_decline="generic_decline"),
    "chargeDeclinedInsufficientFunds": TestCard(
        "visa", "9995", charge_decline="insufficient_funds"
    ),
    "chargeDeclinedExpiredCard": TestCard("visa", "0069", attach_decline="expired_card"),
}
DECLINE_MESSAGES = {
    "generic_decline": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
    "expired_card": "Your card has expired.",
}


def _token_card(token: str) -> TestCard | None:
    for prefix in ("pm_card_", "tok_"):
        if token.startswith(prefix):
            return TEST_CARDS.get(token[len(prefix) :])
    return None


def _new_card(account: Account, card: TestCard, origin: Origin, billing: Obj | None) -> Obj:
    method: Obj = {
        "id": account.new_id("pm", 24),
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": {
            "address": {
                "city": None,
                "country": None,
                "line1": None,
                "line2": None,
                "postal_code": None,
                "state": None,
            },
            "email": None,
            "name": None,
            "phone": None,
            "tax_id": None,
        },
        "card": {
            "brand": card.brand,
            "checks": {
                "address_line1_check": None,
                "address_postal_code_check": None,
                "cvc_check": "pass",
            },
            "country": card.country,
            "display_brand": card.brand,
            "exp_month": 12,
            "exp_year": 2034,
            "fingerprint": f"emu{card.brand[:3]}{card.last4}",
            "funding": card.funding,
            "generated_from": None,
            "last4": card.last4,
            "networks": {"available": [card.brand], "preferred": None},
            "regulated_status": "unregulated",
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
        },
        "created": account.now(),
        "customer": None,
        "livemode": False,
        "metadata": {},
        "type": "card",
        "_test_card": card,
    }
    if billing:
        _billing(method, billing)
    account.add(method)
    return method


def _billing(method: Obj, billing: Obj) -> None:
    details = method["billing_details"]
    for key in ("email", "name", "phone"):
        if key in billing:
            details[key] = billing[key] or None
    if isinstance(billing.get("address"), dict):
        details["address"].update({k: v or None for k, v in billing["address"].items()})


def resolve(account: Account, method_id: str, origin: Origin, param: str = "payment_method") -> Obj:
    """A stored payment method, or a fresh one made from a test token."""
    card = _token_card(method_id)
    if card is not None:
        return _new_card(account, card, origin, None)
    return account.get("payment_method", method_id, param)


def attach(account: Account, method_id: str, customer: Obj, origin: Origin) -> Obj:
    method = resolve(account, method_id, origin)
    if method.get("customer") == customer["id"]:
        return method
    if method.get("customer") is not None:
        raise invalid(
            "The payment method you provided has already been attached to a customer.",
            "payment_method",
        )
    card: TestCard = method["_test_card"]
    if card.attach_decline:
        raise card_declined(DECLINE_MESSAGES[card.attach_decline], card.attach_decline)
    method["customer"] = customer["id"]
    account.emit("payment_method.attached", method, origin)
    return method


def detach(account: Account, method: Obj, origin: Origin) -> None:
    customer_id = method.get("customer")
    if customer_id is None:
        raise invalid(
            "The payment method you provided is not attached to a customer so detachment is "
            "impossible.",
            "payment_method",
        )
    customer = account.find(customer_id)
    if (
        customer is not None
        and customer["invoice_settings"]["default_payment_method"] == method["id"]
    ):
        with account.updating(customer, origin):
            customer["invoice_settings"]["default_payment_method"] = None
    for subscription in account.all(
        "subscription", lambda sub: sub.get("default_payment_method") == method["id"]
    ):
        with account.updating(subscription, origin):
            subscription["default_payment_method"] = None
    method["customer"] = None
    account.emit("payment_method.detached", method, origin, {"customer": customer_id})


def charge_outcome(method: Obj | None) -> str | None:
    """None when a charge on `method` succeeds, else the decline code."""
    if method is None:
        return "no_payment_method"
    card: TestCard = method["_test_card"]
    return card.charge_decline


@router.post("/v1/payment_methods")
def create(call: Call) -> Obj:
    account, params = call.account, call.params
    if choice(params, "type", ("card",), None) is None:
        raise missing_param("type")
    card_params = mapping(params, "card")
    token = text(card_params, "token")
    if token is None:
        raise StripeError(
            402 if "number" in card_params else 400,
            "Sending credit card numbers directly to the Stripe API is generally unsafe. Use a "
            "test token such as card[token]=tok_visa or pm_card_visa.",
            code="card_number_unsupported" if "number" in card_params else "parameter_missing",
            param="card",
        )
    card = _token_card(token)
    if card is None:
        raise invalid(f"No such token: '{token}'", "card[token]", code="resource_missing")
    method = _new_card(account, card, call.origin, mapping(params, "billing_details"))
    apply_metadata(method["metadata"], params)
    return account.render(method)


@router.get("/v1/payment_methods/{id}")
def retrieve(call: Call) -> Obj:
    return call.account.render(call.account.get("payment_method", call.path["id"]))


@router.post("/v1/payment_methods/{id}")
def update(call: Call) -> Obj:
    account, params = call.account, call.params
    method = account.get("payment_method", call.path["id"])
    with account.updating(method, call.origin):
        if "billing_details" in params:
            _billing(method, mapping(params, "billing_details"))
        card = mapping(params, "card")
        for key in ("exp_month", "exp_year"):
            if key in card:
                method["card"][key] = integer(card, key)
        if "allow_redisplay" in params:
            method["allow_redisplay"] = text(params, "allow_redisplay")
        apply_metadata(method["metadata"], params)
    return account.render(method)


@router.post("/v1/payment_methods/{id}/attach")
def attach_route(call: Call) -> Obj:
    account = call.account
    customer = account.get("customer", required_text(call.params, "customer"), "customer")
    return account.render(attach(account, call.path["id"], customer, call.origin))


@router.post("/v1/payment_methods/{id}/detach")
def detach_route(call: Call) -> Obj:
    account = call.account
    method = account.get("payment_method", call.path["id"])
    detach(account, method, call.origin)
    return account.render(method)


def _list(call: Call, customer_id: str | None, url: str) -> Obj:
    account, params = call.account, call.params
    kind = text(params, "type")
    if customer_id is not None:
        account.get("customer", customer_id, "customer")
    found = account.all(
        "payment_method",
        lambda method: (
            (customer_id is None or method["customer"] == customer_id)
            and (kind is None or method["type"] == kind)
            and method["customer"] is not None
        ),
    )
    return page(found, params, url, account.render, label="payment method")


@router.get("/v1/payment_methods")
def list_methods(call: Call) -> Obj:
    return _list(call, text(call.params, "customer"), "/v1/payment_methods")


@router.get("/v1/customers/{customer}/payment_methods")
def list_customer_methods(call: Call) -> Obj:
    customer = call.path["customer"]
    return _list(call, customer, f"/v1/customers/{customer}/payment_methods")


@router.get("/v1/customers/{customer}/payment_methods/{id}")
def retrieve_customer_method(call: Call) -> Obj:
    method = call.account.get("payment_method", call.path["id"])
    if method["customer"] != call.path["customer"]:
        raise invalid(
            f"No such PaymentMethod: '{call.path['id']}'", "payment_method", "resource_missing"
        )
    return call.account.render(method)
