"""CDC messages (as CometD delivers them) become log events: one per record, keyed and flagged."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from state.records import Link
from stream.salesforce.cdc_events import NotAChangeEvent, to_log_events
from tests.conftest import SAMPLES


def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SAMPLES / f"{name}.json").read_text())
    return loaded


def body(event: Any) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(event.payload)
    return loaded


def test_account_update_is_one_event_in_the_accounts_stream() -> None:
    events, links = to_log_events(sample("sf_account_update_cometd"))
    assert links == []
    [event] = events
    assert event.customer == "001xx000003DGb2AAG"
    assert event.source == "salesforce"
    assert event.source_event_id == "0001f3b9-11d0-4a7e-90c3-52d7e80f4a16:1:001xx000003DGb2AAG"
    assert event.type == "Account.UPDATE"
    assert (event.object_type, event.object_id) == ("Account", "001xx000003DGb2AAG")
    assert event.occurred_at.timestamp() == 1748943687.0
    normalised = body(event)
    assert normalised["replay_id"] == 18342977
    assert normalised["changed_fields"][:2] == ["Phone", "Website"]
    assert normalised["nulled_fields"] == ["Website"]  # over CometD a cleared field is a null
    assert normalised["commit_user"] == "005xx000001X8UzAAK"
    assert normalised["reread"] is None
    assert normalised["raw"] == sample("sf_account_update_cometd")


def test_the_same_change_on_two_channels_has_one_identity() -> None:
    on_entity_channel = sample("sf_account_update_cometd")
    on_all_channel = copy.deepcopy(on_entity_channel)
    on_all_channel["channel"] = "/data/ChangeEvents"
    on_all_channel["data"]["event"]["replayId"] = 99
    [a], _ = to_log_events(on_entity_channel)
    [b], _ = to_log_events(on_all_channel)
    assert a.source_event_id == b.source_event_id


def test_a_bulk_change_becomes_one_event_per_record() -> None:
    message = sample("sf_account_update_cometd")
    header = message["data"]["payload"]["ChangeEventHeader"]
    header["recordIds"] = ["001A", "001B", "001C"]
    events, _ = to_log_events(message)
    assert [e.customer for e in events] == ["001A", "001B", "001C"]
    assert len({e.source_event_id for e in events}) == 3


def test_each_record_of_a_bulk_change_names_itself_in_its_body() -> None:
    message = sample("sf_account_update_cometd")
    message["data"]["payload"]["ChangeEventHeader"]["recordIds"] = ["001A", "001B"]
    events, _ = to_log_events(message)
    assert [body(e)["record_id"] for e in events] == ["001A", "001B"]
    assert body(events[0]) | {"record_id": "001B"} == body(events[1])


def test_nulled_fields_are_present_nulls_including_compound_parts() -> None:
    message = sample("sf_account_update_cometd")
    payload = message["data"]["payload"]
    payload["ChangeEventHeader"]["changedFields"] = [
        "Website",  # present and null
        "Phone",  # present, not null
        "Fax",  # named but absent: not known to be null
        "BillingAddress.City",  # a compound part, null
        "BillingAddress.Street",  # a compound part, absent
        "ShippingAddress.City",  # the compound field itself is absent
    ]
    payload["BillingAddress"] = {"City": None, "PostalCode": "62565"}
    [event], _ = to_log_events(message)
    assert body(event)["nulled_fields"] == ["Website", "BillingAddress.City"]
    # Without changedFields (a CREATE), every top-level null counts.
    payload["ChangeEventHeader"]["changedFields"] = []
    [event], _ = to_log_events(message)
    assert body(event)["nulled_fields"] == ["Website"]


def test_contacts_use_their_alias_and_link_when_the_account_is_named() -> None:
    message = sample("sf_contact_update_cometd")
    [event], links = to_log_events(message)
    assert event.customer == "contact:003xx000004TmiQAAS"
    assert links == []  # an UPDATE that leaves AccountId alone does not name it
    message["data"]["payload"]["AccountId"] = "001xx000003DGb2AAG"
    _, links = to_log_events(message)
    assert links == [Link("contact:003xx000004TmiQAAS", "001xx000003DGb2AAG")]


def test_gap_events_are_flagged_for_a_record_re_read() -> None:
    events, _ = to_log_events(sample("sf_gap_update_cometd"))
    assert [e.customer for e in events] == ["001xx000003DGb3AAG", "001xx000003DGb4AAG"]
    assert {body(e)["reread"] for e in events} == {"record"}
    assert {e.type for e in events} == {"Account.GAP_UPDATE"}


def test_overflow_goes_to_the_entity_stream_for_a_full_re_read() -> None:
    [event], _ = to_log_events(sample("sf_gap_overflow_cometd"))
    assert event.customer == "salesforce:Contact"
    assert body(event)["reread"] == "entity"


def test_wildcard_record_ids_mean_the_whole_entity() -> None:
    message = sample("sf_account_update_cometd")
    message["data"]["payload"]["ChangeEventHeader"]["recordIds"] = ["001*"]
    [event], _ = to_log_events(message)
    assert event.customer == "salesforce:Account"
    assert body(event)["reread"] == "entity"


def test_a_diffed_text_field_is_flagged_for_re_read() -> None:
    message = sample("sf_account_update_cometd")
    message["data"]["payload"]["Description"] = {"diff": "--- \n+++ abc\n@@ -1 +1 @@\n-a\n+b\n"}
    [event], _ = to_log_events(message)
    assert body(event)["diff_fields"] == ["Description"]
    assert body(event)["reread"] == "fields"


@pytest.mark.parametrize(
    ("entity", "stream"),
    [
        ("Product2", "catalog"),
        ("PricebookEntry", "catalog"),
        ("Pricebook2", "catalog"),
        ("Opportunity", "salesforce:Opportunity"),
    ],
)
def test_other_entities_have_their_own_streams(entity: str, stream: str) -> None:
    message = sample("sf_account_update_cometd")
    message["data"]["payload"]["ChangeEventHeader"]["entityName"] = entity
    [event], _ = to_log_events(message)
    assert event.customer == stream


def test_a_message_without_a_header_is_refused() -> None:
    with pytest.raises(NotAChangeEvent):
        to_log_events({"channel": "/data/AccountChangeEvent", "data": {"payload": {}}})
