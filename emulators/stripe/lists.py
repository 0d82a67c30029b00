"""List objects: `limit`, `starting_after` / `ending_before` cursors, `has_more`, `created`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from emulators.stripe.errors import StripeError, invalid, no_such
from emulators.stripe.params import Params, integer

Obj = dict[str, Any]
LIMIT_DEFAULT = 10
LIMIT_MAX = 100


def limit_of(params: Params) -> int:
    limit = integer(params, "limit", LIMIT_DEFAULT)
    assert limit is not None
    if not 1 <= limit <= LIMIT_MAX:
        raise invalid(
            f"This value must be between 1 and {LIMIT_MAX} (it currently is {limit}).", "limit"
        )
    return limit


def created_matches(params: Params, created: int, key: str = "created") -> bool:
    """`created=<ts>` or `created[gt|gte|lt|lte]=<ts>`."""
    condition = params.get(key)
    if condition is None or condition == "":
        return True
    if isinstance(condition, str):
        return created == _ts(condition, key)
    if not isinstance(condition, dict):
        raise invalid(f"Invalid {key}", key)
    checks = {
        "gt": lambda bound: created > bound,
        "gte": lambda bound: created >= bound,
        "lt": lambda bound: created < bound,
        "lte": lambda bound: created <= bound,
    }
    for op, bound in condition.items():
        if op not in checks:
            raise invalid(f"Received unknown parameter: {key}[{op}]", f"{key}[{op}]")
        if not checks[op](_ts(bound, f"{key}[{op}]")):
            return False
    return True


def _ts(value: Any, param: str) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise invalid(f"Invalid timestamp: {value}", param) from None


def page(
    items: Sequence[Obj],
    params: Params,
    url: str,
    render: Callable[[Obj], Obj],
    *,
    label: str = "object",
    position: Callable[[str], int | None] | None = None,
) -> Obj:
    """One page of `items` (already filtered, newest first) as a Stripe list object.

    A cursor is located by `position` (its index in the same order), by default by looking it up
    in `items`; an unknown cursor is Stripe's 404 `resource_missing`."""
    limit = limit_of(params)
    after, before = params.get("starting_after"), params.get("ending_before")
    if after and before:
        raise StripeError(
            400, "You may only specify one of these parameters: ending_before, starting_after."
        )
    ids = [item["id"] for item in items]

    def locate(cursor: str, param: str) -> int:
        index = position(cursor) if position else (ids.index(cursor) if cursor in ids else None)
        if index is None:
            raise no_such(label, cursor, param)
        return index

    if after:
        start = locate(str(after), "starting_after") + 1
        chosen = list(items[start : start + limit])
        has_more = start + limit < len(items)
    elif before:
        end = locate(str(before), "ending_before")
        begin = max(0, end - limit)
        chosen = list(items[begin:end])
        has_more = begin > 0
    else:
        chosen = list(items[:limit])
        has_more = limit < len(items)
    return {
        "object": "list",
        "data": [render(item) for item in chosen],
        "has_more": has_more,
        "url": url,
    }
