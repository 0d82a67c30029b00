"""Salesforce record ids: 15 characters (case-sensitive, as people copy them from the UI) or 18
(the same plus a case checksum, as the API and CDC give them). sfstripe keys streams by the 18."""

from __future__ import annotations

CHECKSUM_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def id18(record_id: str) -> str:
    """The 18-character form of a record id; other strings come back unchanged."""
    if len(record_id) != 15 or not record_id.isalnum():
        return record_id
    suffix = ""
    for start in (0, 5, 10):
        bits = sum(1 << i for i, char in enumerate(record_id[start : start + 5]) if char.isupper())
        suffix += CHECKSUM_ALPHABET[bits]
    return record_id + suffix


def id15(record_id: str) -> str:
    return record_id[:15] if len(record_id) == 18 else record_id
