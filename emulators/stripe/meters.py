"""Billing meters, meter events (`identifier` dedupe over 24 hours, `timestamp` window),
cancellations by adjustment, event summaries, and the usage a metered price bills.

Usage is aggregated when a period's invoice is made: `sum` or `count` of the events of the
customer in [period start, period end), or the `last` value.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from emulators.stripe.account import Account
from emulators.stripe.errors import StripeError, invalid, missing_param
from emulators.stripe.lists import page
from emulators.stripe.params import choice, integer, mapping, required_text, text
from emulators.stripe.routing import Call, Obj, Router

router = Router()
IDENTIFIER_WINDOW_S = 24 * 3600
PAST_LIMIT_S = 35 * 24 * 3600
FUTURE_LIMIT_S = 5 * 60


@router.post("/v1/billing/meters")
def create_meter(call: Call) -> Obj:
    account, params = call.account, call.params
    event_name = required_text(params, "event_name")
    if account.all(
        "billing.meter",
        lambda meter: meter["event_name"] == event_name and meter["status"] == "active",
    ):
        raise invalid(
            f"An active meter with event_name `{event_name}` already exists.", "event_name"
        )
    aggregation = mapping(params, "default_aggregation")
    formula = choice(aggregation, "formula", ("sum", "count", "last"), None)
    if formula is None:
        raise missing_param("default_aggregation[formula]")
    now = account.now()
    meter: Obj = {
        "id": account.new_id("mtr", 24),
        "object": "billing.meter",
        "created": now,
        "customer_mapping": {
            "event_payload_key": text(
                mapping(params, "customer_mapping"), "event_payload_key", "stripe_customer_id"
            ),
            "type": "by_id",
        },
        "default_aggregation": {"formula": formula},
        "display_name": required_text(params, "display_name"),
        "event_name": event_name,
        "event_time_window": text(params, "event_time_window"),
        "livemode": False,
        "status": "active",
        "status_transitions": {"deactivated_at": None},
        "updated": now,
        "value_settings": {
            "event_payload_key": text(
                mapping(params, "value_settings"), "event_payload_key", "value"
            )
        },
    }
    return account.render(account.created(meter, call.origin))


@router.get("/v1/billing/meters/{id}")
def retrieve_meter(call: Call) -> Obj:
    return call.account.render(call.account.get("billing.meter", call.path["id"]))


@router.post("/v1/billing/meters/{id}")
def update_meter(call: Call) -> Obj:
    account = call.account
    meter = account.get("billing.meter", call.path["id"])
    with account.updating(meter, call.origin):
        if "display_name" in call.params:
            meter["display_name"] = required_text(call.params, "display_name")
            meter["updated"] = account.now()
    return account.render(meter)


def _set_status(call: Call, status: str, event_type: str) -> Obj:
    account = call.account
    meter = account.get("billing.meter", call.path["id"])
    if meter["status"] == status:
        raise invalid(f"The meter is already {status}.")
    meter["status"] = status
    meter["status_transitions"]["deactivated_at"] = account.now() if status == "inactive" else None
    meter["updated"] = account.now()
    account.emit(event_type, meter, call.origin)
    return account.render(meter)


@router.post("/v1/billing/meters/{id}/deactivate")
def deactivate(call: Call) -> Obj:
    return _set_status(call, "inactive", "billing.meter.deactivated")


@router.post("/v1/billing/meters/{id}/reactivate")
def reactivate(call: Call) -> Obj:
    return _set_status(call, "active", "billing.meter.reactivated")


@router.get("/v1/billing/meters")
def list_meters(call: Call) -> Obj:
    account = call.account
    status = text(call.params, "status")
    found = account.all("billing.meter", lambda meter: status is None or meter["status"] == status)
    return page(found, call.params, "/v1/billing/meters", account.render, label="billing meter")


@router.post("/v1/billing/meter_events")
def create_event(call: Call) -> Obj:
    account, params = call.account, call.params
    event_name = required_text(params, "event_name")
    payload = mapping(params, "payload")
    if not payload:
        raise missing_param("payload")
    now = account.now()
    timestamp = integer(params, "timestamp", now)
    assert timestamp is not None
    if timestamp < now - PAST_LIMIT_S or timestamp > now + FUTURE_LIMIT_S:
        raise invalid(
            "Timestamp must be within the past 35 days and not more than 5 minutes in the future.",
            "timestamp",
        )
    meter = next(
        iter(account.all("billing.meter", lambda found: found["event_name"] == event_name)), None
    )
    if meter is not None:
        customer_key = meter["customer_mapping"]["event_payload_key"]
        value_key = meter["value_settings"]["event_payload_key"]
        if customer_key not in payload:
            raise missing_param(f"payload[{customer_key}]")
        if meter["default_aggregation"]["formula"] != "count":
            try:
                Decimal(str(payload.get(value_key)))
            except InvalidOperation:
                raise invalid(
                    f"payload[{value_key}] must be a number (sent as a string).",
                    f"payload[{value_key}]",
                ) from None
    identifier = text(params, "identifier") or account.new_id("mev", 20)
    if len(identifier) > 100:
        raise invalid("identifier must be at most 100 characters.", "identifier")
    for earlier in account.all(
        "billing.meter_event", lambda found: found["identifier"] == identifier
    ):
        if now - earlier["created"] < IDENTIFIER_WINDOW_S:
            raise StripeError(
                400,
                f"An event already exists with identifier {identifier}.",
                code="resource_already_exists",
                param="identifier",
            )
    event: Obj = {
        "id": account.new_id("mev", 24),
        "object": "billing.meter_event",
        "created": now,
        "event_name": event_name,
        "identifier": identifier,
        "livemode": False,
        "payload": {key: str(value) for key, value in payload.items()},
        "timestamp": timestamp,
        "_canceled": False,
    }
    account.add(event)
    shown = account.render(event)
    shown.pop("id")
    return shown


@router.post("/v1/billing/meter_event_adjustments")
def adjust(call: Call) -> Obj:
    account, params = call.account, call.params
    event_name = required_text(params, "event_name")
    choice(params, "type", ("cancel",), "cancel")
    identifier = required_text(mapping(params, "cancel"), "identifier")
    for event in account.all(
        "billing.meter_event",
        lambda found: found["identifier"] == identifier and found["event_name"] == event_name,
    ):
        event["_canceled"] = True
    return {
        "object": "billing.meter_event_adjustment",
        "cancel": {"identifier": identifier},
        "event_name": event_name,
        "livemode": False,
        "status": "pending",
        "type": "cancel",
    }


def usage(account: Account, meter_id: str, customer_id: str, start: int, end: int) -> Decimal:
    """The meter's aggregate for one customer over [start, end)."""
    meter = account.get("billing.meter", meter_id)
    customer_key = meter["customer_mapping"]["event_payload_key"]
    value_key = meter["value_settings"]["event_payload_key"]
    events = [
        event
        for event in reversed(account.all("billing.meter_event"))
        if event["event_name"] == meter["event_name"]
        and not event["_canceled"]
        and event["payload"].get(customer_key) == customer_id
        and start <= event["timestamp"] < end
    ]
    formula = meter["default_aggregation"]["formula"]
    if formula == "count":
        return Decimal(len(events))
    values = [Decimal(event["payload"].get(value_key, "0")) for event in events]
    if formula == "last":
        return max(
            zip((event["timestamp"] for event in events), values, strict=True),
            default=(0, Decimal(0)),
        )[1]
    return sum(values, Decimal(0))


@router.get("/v1/billing/meters/{id}/event_summaries")
def event_summaries(call: Call) -> Obj:
    account, params = call.account, call.params
    meter = account.get("billing.meter", call.path["id"])
    customer = required_text(params, "customer")
    start = integer(params, "start_time")
    end = integer(params, "end_time")
    if start is None or end is None:
        raise missing_param("start_time" if start is None else "end_time")
    value = usage(account, meter["id"], customer, start, end)
    summary = {
        "id": f"mtrusg_{meter['id']}_{start}",
        "object": "billing.meter_event_summary",
        "aggregated_value": float(value),
        "end_time": end,
        "livemode": False,
        "meter": meter["id"],
        "start_time": start,
    }
    return page([summary], params, f"/v1/billing/meters/{meter['id']}/event_summaries", dict)
