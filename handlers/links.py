"""The link rule: an account-stream event past a joining `sfstripe.link` marker waits until the
same handler has applied the alias stream through the marker's `alias_last_seq`.

The marker's payload is decoded here, by the runtime; handlers still decide from columns only.
"""

from __future__ import annotations

import msgspec

from state.log import MARKER_SOURCE
from state.records import LoggedEvent

LINK_TYPE = "sfstripe.link"


class JoiningMarker(msgspec.Struct, frozen=True):
    alias: str
    customer: str
    alias_last_seq: int


_decoder = msgspec.json.Decoder(JoiningMarker)


def is_link(event: LoggedEvent) -> bool:
    """A link marker (closing an alias stream, or joining an account's): every handler's lane
    sees these, wanted or not, so that the rule holds for all."""
    return event.type == LINK_TYPE and event.source == MARKER_SOURCE


def joining_marker(event: LoggedEvent) -> JoiningMarker | None:
    """The marker's alias and seq when `event` joins an account's stream, else None (the
    closing marker sits in the alias stream itself)."""
    if not is_link(event):
        return None
    try:
        marker = _decoder.decode(event.payload)
    except msgspec.DecodeError:
        return None
    if event.customer != marker.customer or event.customer == marker.alias:
        return None
    return marker
