"""Turns one CDC message (as CometD delivers it) into log events, one per record.

`source_event_id` is `transactionKey:sequenceNumber:recordId`, which names the change whatever
channel delivered it (the same change arrives on `/data/ChangeEvents` and on
`/data/AccountChangeEvent` with different replay ids), so it is stored once.

Over CometD `nulledFields` and `diffFields` arrive empty: a cleared field is a present key with a
null value, and a large text field may come as `{"diff": ...}`. Both are derived here; diffs, gap
events and overflow events are flagged for a re-read through REST (`reread`), which handlers do.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from state.records import Link, NewEvent

CATALOG_ENTITIES = frozenset({"Product2", "PricebookEntry", "Pricebook2"})
CATALOG_STREAM = "catalog"
OVERFLOW_RECORD_ID = "000000000000000AAA"


class Header(msgspec.Struct, rename="camel"):
    entity_name: str
    record_ids: list[str]
    change_type: str
    transaction_key: str
    sequence_number: int
    commit_timestamp: int
    commit_number: int | None = None
    commit_user: str | None = None
    change_origin: str | None = None
    changed_fields: list[str] = []


class NotAChangeEvent(ValueError):
    """The message has no usable ChangeEventHeader."""


def _value_at(fields: dict[str, Any], dotted: str) -> tuple[bool, Any]:
    node: Any = fields
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


_ABSENT = object()


def _nulled(fields: dict[str, Any], changed: list[str]) -> list[str]:
    """The fields (or compound parts, `BillingAddress.City`) present with a null value."""
    names = changed or [name for name in fields if name != "ChangeEventHeader"]
    return [
        name
        for name in names
        if (
            fields.get(name, _ABSENT) is None
            if "." not in name
            else _value_at(fields, name) == (True, None)
        )
    ]


def _diffs(fields: dict[str, Any]) -> list[str]:
    return [
        name
        for name, value in fields.items()
        if isinstance(value, dict) and len(value) == 1 and "diff" in value
    ]


def _reread(header: Header, diff_fields: list[str]) -> str | None:
    """What a handler must re-read through REST before trusting this event."""
    wildcard = any(rid.endswith("*") or rid == OVERFLOW_RECORD_ID for rid in header.record_ids)
    if header.change_type == "GAP_OVERFLOW" or wildcard:
        return "entity"
    if header.change_type.startswith("GAP_"):
        return "record"
    return "fields" if diff_fields else None


def _stream(header: Header, record_id: str, fields: dict[str, Any]) -> tuple[str, Link | None]:
    entity = header.entity_name
    if entity == "Account":
        return record_id, None
    if entity == "Contact":
        alias = f"contact:{record_id}"
        account = fields.get("AccountId")
        return alias, Link(alias, account) if isinstance(account, str) and account else None
    if entity in CATALOG_ENTITIES:
        return CATALOG_STREAM, None
    return f"salesforce:{entity}", None


def record_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The changed (or, for CREATE, all non-empty) fields of a stored CDC event's payload."""
    payload: dict[str, Any] = body["raw"]["data"]["payload"]
    return {k: v for k, v in payload.items() if k != "ChangeEventHeader"}


def to_log_events(message: dict[str, Any]) -> tuple[list[NewEvent], list[Link]]:
    """The log events (one per record) and the links a message implies."""
    try:
        data = message["data"]
        payload = data["payload"]
        header = msgspec.convert(payload["ChangeEventHeader"], Header)
        replay_id = data["event"]["replayId"]
    except (KeyError, TypeError, msgspec.ValidationError) as exc:
        raise NotAChangeEvent(f"not a CDC message: {exc}") from None
    # The payload is the record's fields besides the header (a dict, never a `{"diff": ...}`
    # nor null), so it is read in place rather than copied.
    fields: dict[str, Any] = payload
    diff_fields = _diffs(fields)
    reread = _reread(header, diff_fields)
    occurred = datetime.fromtimestamp(header.commit_timestamp / 1000, UTC)
    common = {
        "channel": message.get("channel"),
        "replay_id": replay_id,
        "entity": header.entity_name,
        "change_type": header.change_type,
        "record_ids": header.record_ids,
        "changed_fields": header.changed_fields,
        "nulled_fields": _nulled(fields, header.changed_fields),
        "diff_fields": diff_fields,
        "reread": reread,
        "commit_timestamp": header.commit_timestamp,
        "commit_number": header.commit_number,
        "transaction_key": header.transaction_key,
        "sequence_number": header.sequence_number,
        "commit_user": header.commit_user,
        "change_origin": header.change_origin,
        "raw": message,  # the record's fields are in raw.data.payload: stored once, not twice
    }
    targets: list[tuple[str, str, Link | None]] = []
    if reread == "entity":
        # No usable record ids: one event for the entity, which handlers re-read whole.
        targets.append((f"salesforce:{header.entity_name}", header.entity_name, None))
    else:
        for record_id in header.record_ids:
            stream, link = _stream(header, record_id, fields)
            targets.append((stream, record_id, link))
    events: list[NewEvent] = []
    links: list[Link] = []
    for stream, record_id, link in targets:
        body = dict(common) if len(targets) > 1 else common
        body["record_id"] = record_id
        events.append(
            NewEvent(
                customer=stream,
                source="salesforce",
                source_event_id=f"{header.transaction_key}:{header.sequence_number}:{record_id}",
                type=f"{header.entity_name}.{header.change_type}",
                occurred_at=occurred,
                payload=msgspec.json.encode(body).decode(),
                object_type=header.entity_name,
                object_id=record_id,
            )
        )
        if link is not None:
            links.append(link)
    return events, links
