"""Products, prices (one-off, recurring licensed, metered on a billing meter; `lookup_key`,
`active`) and legacy plans (stored as prices, shown in plan shape)."""

from __future__ import annotations

from emulators.stripe.account import Account
from emulators.stripe.errors import StripeError, invalid, missing_param
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
from emulators.stripe.routing import Call, Obj, Origin, Router

router = Router()
INTERVALS = ("day", "week", "month", "year")


# -- products -----------------------------------------------------------------------------------
def new_product(account: Account, params: Params, origin: Origin) -> Obj:
    product_id = text(params, "id") or account.new_id("prod", 14)
    if account.find(product_id) is not None:
        raise StripeError(
            400, f"Product already exists: {product_id}", code="resource_already_exists"
        )
    now = account.now()
    product: Obj = {
        "id": product_id,
        "object": "product",
        "active": boolean(params, "active", True),
        "created": now,
        "default_price": None,
        "description": text(params, "description"),
        "images": [str(image) for image in array(params, "images")],
        "livemode": False,
        "marketing_features": [],
        "metadata": {},
        "name": required_text(params, "name"),
        "package_dimensions": None,
        "shippable": None,
        "statement_descriptor": text(params, "statement_descriptor"),
        "tax_code": text(params, "tax_code"),
        "type": "service",
        "unit_label": text(params, "unit_label"),
        "updated": now,
        "url": text(params, "url"),
    }
    apply_metadata(product["metadata"], params)
    account.created(product, origin)
    default = mapping(params, "default_price_data")
    if default:
        price = new_price(account, {**default, "product": product_id}, origin)
        with account.updating(product, origin):
            product["default_price"] = price["id"]
    return product


@router.post("/v1/products")
def create_product(call: Call) -> Obj:
    return call.account.render(new_product(call.account, call.params, call.origin))


@router.get("/v1/products/{id}")
def retrieve_product(call: Call) -> Obj:
    return call.account.render(call.account.get("product", call.path["id"]))


@router.post("/v1/products/{id}")
def update_product(call: Call) -> Obj:
    account, params = call.account, call.params
    product = account.get("product", call.path["id"])
    with account.updating(product, call.origin):
        for key in ("name", "description", "statement_descriptor", "unit_label", "url"):
            if key in params:
                product[key] = text(params, key)
        if "active" in params:
            product["active"] = boolean(params, "active")
        if "default_price" in params:
            price_id = text(params, "default_price")
            if price_id is not None:
                account.get("price", price_id, "default_price")
            product["default_price"] = price_id
        apply_metadata(product["metadata"], params)
        product["updated"] = account.now()
    return account.render(product)


@router.delete("/v1/products/{id}")
def delete_product(call: Call) -> Obj:
    account = call.account
    product = account.get("product", call.path["id"])
    if account.all("price", lambda price: price["product"] == product["id"]):
        raise invalid(
            "This product cannot be deleted because it has one or more user-created prices."
        )
    account.emit("product.deleted", product, call.origin)
    account.remove(product["id"])
    return {"id": product["id"], "object": "product", "deleted": True}


@router.get("/v1/products")
def list_products(call: Call) -> Obj:
    account, params = call.account, call.params
    active = boolean(params, "active")
    ids = [str(item) for item in array(params, "ids")]
    found = account.all(
        "product",
        lambda product: (
            (active is None or product["active"] == active)
            and (not ids or product["id"] in ids)
            and created_matches(params, product["created"])
        ),
    )
    return page(found, params, "/v1/products", account.render, label="product")


# -- prices -------------------------------------------------------------------------------------
def _unit_amount(params: Params) -> tuple[int | None, str | None]:
    amount = integer(params, "unit_amount")
    decimal = text(params, "unit_amount_decimal")
    if amount is not None:
        return amount, str(amount)
    if decimal is not None:
        whole = float(decimal)
        return (int(whole) if whole == int(whole) else None), decimal
    return None, None


def _take_lookup_key(account: Account, key: str | None, transfer: bool, origin: Origin) -> None:
    if key is None:
        return
    for holder in account.all("price", lambda price: price.get("lookup_key") == key):
        if not transfer:
            raise invalid(f"A price (`{holder['id']}`) already uses that lookup key.", "lookup_key")
        with account.updating(holder, origin):
            holder["lookup_key"] = None


def new_price(account: Account, params: Params, origin: Origin, *, plan: bool = False) -> Obj:
    currency = required_text(params, "currency").lower()
    given = params.get("product")
    product_id = given if isinstance(given, str) and given else None
    if product_id is None:
        product_data = mapping(params, "product_data") or (
            mapping(params, "product") if isinstance(params.get("product"), dict) else {}
        )
        if not product_data:
            raise missing_param("product")
        product_id = new_product(account, product_data, origin)["id"]
    else:
        account.get("product", product_id, "product")
    recurring_params = mapping(params, "recurring")
    recurring: Obj | None = None
    if plan:
        recurring_params = {
            "interval": params.get("interval"),
            "interval_count": params.get("interval_count", "1"),
            "usage_type": params.get("usage_type", "licensed"),
            "meter": params.get("meter"),
        }
        if "amount" in params:
            params = {**params, "unit_amount": params["amount"]}
    if recurring_params:
        interval = choice(recurring_params, "interval", INTERVALS, None)
        if interval is None:
            raise missing_param("recurring[interval]")
        usage_type = choice(recurring_params, "usage_type", ("licensed", "metered"), "licensed")
        meter = text(recurring_params, "meter")
        if usage_type == "metered":
            if meter is None:
                raise invalid(
                    "Metered prices must reference a billing meter (recurring[meter]); legacy "
                    "usage records were removed in 2025-03-31.basil.",
                    "recurring[meter]",
                )
            account.get("billing.meter", meter, "recurring[meter]")
        recurring = {
            "interval": interval,
            "interval_count": integer(recurring_params, "interval_count", 1),
            "meter": meter,
            "trial_period_days": integer(recurring_params, "trial_period_days"),
            "usage_type": usage_type,
        }
    amount, decimal = _unit_amount(params)
    if decimal is None:
        raise missing_param("unit_amount")
    lookup_key = text(params, "lookup_key")
    _take_lookup_key(account, lookup_key, bool(params.get("transfer_lookup_key") == "true"), origin)
    price_id = text(params, "id") if plan else None
    price: Obj = {
        "id": price_id or account.new_id("price", 24),
        "object": "price",
        "active": boolean(params, "active", True),
        "billing_scheme": "per_unit",
        "created": account.now(),
        "currency": currency,
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": lookup_key,
        "metadata": {},
        "nickname": text(params, "nickname"),
        "product": product_id,
        "recurring": recurring,
        "tax_behavior": choice(
            params, "tax_behavior", ("inclusive", "exclusive", "unspecified"), "unspecified"
        ),
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring" if recurring else "one_time",
        "unit_amount": amount,
        "unit_amount_decimal": decimal,
        "_plan": plan,
    }
    apply_metadata(price["metadata"], params)
    account.add(price)
    account.emit(
        "plan.created" if plan else "price.created",
        price,
        origin,
        rendered=plan_view(account, price) if plan else None,
    )
    return price


def plan_view(account: Account, price: Obj) -> Obj:
    """A price as the legacy Plan object."""
    recurring = price["recurring"] or {}
    return {
        "id": price["id"],
        "object": "plan",
        "active": price["active"],
        "amount": price["unit_amount"],
        "amount_decimal": price["unit_amount_decimal"],
        "billing_scheme": price["billing_scheme"],
        "created": price["created"],
        "currency": price["currency"],
        "interval": recurring.get("interval"),
        "interval_count": recurring.get("interval_count"),
        "livemode": False,
        "metadata": dict(price["metadata"]),
        "meter": recurring.get("meter"),
        "nickname": price["nickname"],
        "product": price["product"],
        "tiers_mode": None,
        "transform_usage": None,
        "trial_period_days": recurring.get("trial_period_days"),
        "usage_type": recurring.get("usage_type", "licensed"),
    }


@router.post("/v1/prices")
def create_price(call: Call) -> Obj:
    return call.account.render(new_price(call.account, call.params, call.origin))


@router.get("/v1/prices/{id}")
def retrieve_price(call: Call) -> Obj:
    return call.account.render(call.account.get("price", call.path["id"]))


@router.post("/v1/prices/{id}")
def update_price(call: Call) -> Obj:
    account, params = call.account, call.params
    price = account.get("price", call.path["id"])
    with account.updating(price, call.origin):
        if "active" in params:
            price["active"] = boolean(params, "active")
        if "nickname" in params:
            price["nickname"] = text(params, "nickname")
        if "lookup_key" in params:
            key = text(params, "lookup_key")
            if key != price["lookup_key"]:
                _take_lookup_key(
                    account, key, params.get("transfer_lookup_key") == "true", call.origin
                )
                price["lookup_key"] = key
        apply_metadata(price["metadata"], params)
    return account.render(price)


@router.get("/v1/prices")
def list_prices(call: Call) -> Obj:
    account, params = call.account, call.params
    active = boolean(params, "active")
    product = text(params, "product")
    kind = text(params, "type")
    currency = text(params, "currency")
    keys = [str(key) for key in array(params, "lookup_keys")]
    recurring = mapping(params, "recurring")

    def wanted(price: Obj) -> bool:  # noqa: PLR0911
        if active is not None and price["active"] != active:
            return False
        if product and price["product"] != product:
            return False
        if kind and price["type"] != kind:
            return False
        if currency and price["currency"] != currency.lower():
            return False
        if keys and price["lookup_key"] not in keys:
            return False
        for key, value in recurring.items():
            if (price["recurring"] or {}).get(key) != value:
                return False
        return created_matches(params, price["created"])

    return page(account.all("price", wanted), params, "/v1/prices", account.render, label="price")


# -- legacy plans ---------------------------------------------------------------------------------
@router.post("/v1/plans")
def create_plan(call: Call) -> Obj:
    if "interval" not in call.params:
        raise missing_param("interval")
    price = new_price(call.account, call.params, call.origin, plan=True)
    return plan_view(call.account, price)


@router.get("/v1/plans/{id}")
def retrieve_plan(call: Call) -> Obj:
    price = call.account.get("price", call.path["id"])
    if price["recurring"] is None:
        raise invalid(f"No such plan: '{call.path['id']}'", "id", code="resource_missing")
    return plan_view(call.account, price)
