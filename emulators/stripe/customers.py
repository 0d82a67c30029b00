"""Customers: create, retrieve, update, delete (cancelling their subscriptions), list, search."""

from __future__ import annotations

from emulators.stripe import subscriptions
from emulators.stripe.account import Account
from emulators.stripe.errors import invalid
from emulators.stripe.lists import created_matches, page
from emulators.stripe.params import Params, apply_metadata, array, choice, integer, mapping, text
from emulators.stripe.routing import Call, Obj, Origin, Router
from emulators.stripe.search import compile_query, search_page

router = Router()
ADDRESS_KEYS = ("city", "country", "line1", "line2", "postal_code", "state")
SEARCH_FIELDS = {"email", "name", "phone", "metadata", "created"}


def _address(params: Params, key: str) -> dict[str, str | None] | None:
    if key not in params or params[key] == "":
        return None
    given = mapping(params, key)
    return {name: (given.get(name) or None) for name in ADDRESS_KEYS}


def _apply(customer: Obj, params: Params, account: Account) -> None:  # noqa: PLR0912
    for key in ("email", "name", "phone", "description", "business_name", "individual_name"):
        if key in params:
            customer[key] = text(params, key)
    if customer.get("email") and len(customer["email"]) > 512:
        raise invalid("email: must be at most 512 characters", "email")
    if "address" in params:
        customer["address"] = _address(params, "address")
    if "shipping" in params:
        shipping = mapping(params, "shipping")
        customer["shipping"] = (
            {
                "address": _address(shipping, "address"),
                "name": shipping.get("name"),
                "phone": shipping.get("phone") or None,
            }
            if shipping
            else None
        )
    if "tax_exempt" in params:
        customer["tax_exempt"] = choice(params, "tax_exempt", ("none", "exempt", "reverse"), "none")
    if "preferred_locales" in params:
        customer["preferred_locales"] = [str(item) for item in array(params, "preferred_locales")]
    if "balance" in params:
        customer["balance"] = integer(params, "balance", 0)
    if "invoice_prefix" in params:
        customer["invoice_prefix"] = text(params, "invoice_prefix")
    settings = mapping(params, "invoice_settings")
    if "default_payment_method" in settings:
        method_id = settings["default_payment_method"] or None
        if method_id is not None:
            method = account.get(
                "payment_method", method_id, "invoice_settings[default_payment_method]"
            )
            if method.get("customer") != customer["id"]:
                raise invalid(
                    f"The customer does not have a payment method with the ID {method_id}. The "
                    "payment method must be attached to the customer.",
                    "invoice_settings[default_payment_method]",
                )
        customer["invoice_settings"]["default_payment_method"] = method_id
    for key in ("footer", "custom_fields", "rendering_options"):
        if key in settings:
            customer["invoice_settings"][key] = settings[key] or None
    apply_metadata(customer["metadata"], params)


@router.post("/v1/customers")
def create(call: Call) -> Obj:
    account, params = call.account, call.params
    customer: Obj = {
        "id": account.new_id("cus", 14),
        "object": "customer",
        "address": None,
        "balance": 0,
        "business_name": None,
        "created": account.now(),
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": None,
        "discount": None,
        "email": None,
        "individual_name": None,
        "invoice_prefix": account.new_id("x", 8)[2:].upper(),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": {},
        "name": None,
        "next_invoice_sequence": 1,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }
    _apply(customer, params, account)
    if customer["name"] is None:  # as Stripe: the business name first, else the individual's
        customer["name"] = customer["business_name"] or customer["individual_name"]
    method_id = text(params, "payment_method")
    account.created(customer, call.origin)
    if method_id:
        from emulators.stripe.payment_methods import attach

        attach(account, method_id, customer, call.origin)
    return account.render(customer)


@router.get("/v1/customers/search")
def search(call: Call) -> Obj:
    account = call.account
    query = text(call.params, "query")
    if not query:
        raise invalid("Missing required param: query.", "query", code="parameter_missing")
    matches = compile_query(query, SEARCH_FIELDS)
    return search_page(
        account.all("customer", matches), call.params, "/v1/customers/search", account.render
    )


@router.get("/v1/customers/{id}")
def retrieve(call: Call) -> Obj:
    account = call.account
    found = account.find(call.path["id"])
    if found is not None and found.get("object") == "customer" and found.get("_deleted"):
        return {"id": found["id"], "object": "customer", "deleted": True}
    return account.render(account.get("customer", call.path["id"]))


@router.post("/v1/customers/{id}")
def update(call: Call) -> Obj:
    account = call.account
    customer = account.get("customer", call.path["id"])
    with account.updating(customer, call.origin):
        _apply(customer, call.params, account)
    return account.render(customer)


@router.delete("/v1/customers/{id}")
def delete(call: Call) -> Obj:
    account = call.account
    customer = account.get("customer", call.path["id"])
    for subscription in account.all(
        "subscription",
        lambda sub: (
            sub["customer"] == customer["id"]
            and sub["status"] not in ("canceled", "incomplete_expired")
        ),
    ):
        subscriptions.cancel_now(account, subscription, call.origin)
    account.emit("customer.deleted", customer, call.origin)
    customer["_deleted"] = True
    return {"id": customer["id"], "object": "customer", "deleted": True}


@router.get("/v1/customers")
def list_customers(call: Call) -> Obj:
    account, params = call.account, call.params
    email = text(params, "email")
    found = account.all(
        "customer",
        lambda customer: (
            (email is None or customer.get("email") == email)
            and created_matches(params, customer["created"])
        ),
    )
    return page(found, params, "/v1/customers", account.render, label="customer")


def adjust_balance(account: Account, customer: Obj, delta: int, origin: Origin) -> None:
    """Credit (negative) or debit (positive) the customer's balance, with its event."""
    if delta == 0:
        return
    with account.updating(customer, origin):
        customer["balance"] += delta
