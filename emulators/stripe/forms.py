"""Stripe's form encoding: nested keys such as `items[0][price]=...` into dicts and lists.

The SDK always sends arrays with explicit indexes (`expand[0]=...`); `key[]=` (append) is accepted
too, as Stripe does. A dict whose keys are all decimal integers becomes a list in index order,
except under `metadata`, whose keys are free-form strings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from emulators.stripe.errors import StripeError

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")
_FREE_FORM = frozenset({"metadata"})


def split_key(key: str) -> list[str]:
    """`a[b][0]` -> `["a", "b", "0"]`; `a[]` -> `["a", ""]` (append)."""
    match = _KEY.match(key)
    if match is None:
        raise StripeError(400, f"Invalid form key: '{key}'", code="parameter_invalid", param=key)
    return [match.group(1), *_PART.findall(match.group(2))]


def parse_pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Decoded form pairs in order -> nested params; a later scalar for the same key wins."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = split_key(key)
        node = root
        for depth, given in enumerate(parts):
            # `[]` appends: a fresh index after those present.
            part = given if given != "" else f"\x00{len(node)}"
            if depth == len(parts) - 1:
                node[part] = value
                break
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
    result = _listify(root, free_form=False)
    assert isinstance(result, dict)
    return result


def _listify(node: Any, *, free_form: bool) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {key: _listify(value, free_form=key in _FREE_FORM) for key, value in node.items()}
    if free_form or not converted:
        return converted
    if all(_index(key) is not None for key in converted):
        return [converted[key] for key in sorted(converted, key=lambda k: _index(k) or 0)]
    return converted


def _index(key: str) -> int | None:
    if key.startswith("\x00"):
        return int(key[1:])
    return int(key) if key.isdigit() else None
