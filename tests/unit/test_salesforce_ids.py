"""Record ids in their 15- and 18-character forms."""

from __future__ import annotations

import pytest

from stream.salesforce.ids import id15, id18


@pytest.mark.parametrize(
    ("short", "full"),
    [
        ("001xx000003DGb2", "001xx000003DGb2AAG"),  # the CDC sample's account
        ("0015000000Gv7qJ", "0015000000Gv7qJAAR"),
        ("003000000000000", "003000000000000AAA"),
        ("001ABCDEFGHIJKL", "001ABCDEFGHIJKLY55"),
    ],
)
def test_the_checksum_suffix_encodes_the_case_of_each_five_characters(
    short: str, full: str
) -> None:
    assert id18(short) == full
    assert id18(full) == full
    assert id15(full) == short


def test_other_strings_pass_unchanged() -> None:
    assert id18("stripe:cus_123") == "stripe:cus_123"
    assert id18("") == ""
    assert id15("catalog") == "catalog"
