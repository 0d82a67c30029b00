"""`expand[]`: replace ids at dotted paths (`customer`, `data.customer`,
`items.data.price.product`, `latest_invoice`, ...) with the objects they name."""

from __future__ import annotations

from typing import Any

from emulators.stripe.account import Account
from emulators.stripe.errors import invalid

MAX_DEPTH = 4


def expand(account: Account, value: Any, paths: list[str]) -> Any:
    for path in paths:
        parts = path.split(".")
        if len(parts) > MAX_DEPTH:
            raise invalid(
                f"You cannot expand more than {MAX_DEPTH} levels of a property.", "expand"
            )
        value = _expand(account, value, parts)
    return value


def _expand(account: Account, value: Any, parts: list[str]) -> Any:
    if isinstance(value, list):
        return [_expand(account, item, parts) for item in value]
    if not isinstance(value, dict) or not parts:
        return value
    head, rest = parts[0], parts[1:]
    if head not in value:
        return value
    child = value[head]
    if isinstance(child, str):
        found = account.find(child)
        if found is not None:
            child = account.render(found)
    value[head] = _expand(account, child, rest)
    return value
