"""Stripe's search query language, the subset sfstripe needs:
`email:'a@b.c'`, `name~'glob'` (substring), `metadata['sf_account_id']:'001...'`,
`created>1700000000`, `-field:'x'` (negation), `field:null`, joined by `AND` or by `OR`
(not both in one query, as on Stripe). Results are returned at once (Stripe's index lags
by up to a minute)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from emulators.stripe.errors import invalid
from emulators.stripe.params import Params, integer, text

Obj = dict[str, Any]
_CLAUSE = re.compile(
    r"""^(?P<neg>-)?(?P<field>[a-z_]+(?:\['(?P<key>[^']+)'\])?)\s*(?P<op>:|~|>=|<=|>|<)\s*
    (?:'(?P<quoted>(?:[^'\\]|\\.)*)'|"(?P<dquoted>(?:[^"\\]|\\.)*)"|(?P<bare>[^\s]+))$""",
    re.VERBOSE,
)
PAGE_PREFIX = "page_"


def compile_query(query: str, fields: set[str]) -> Callable[[Obj], bool]:
    """A predicate over raw objects for `query`; 400 with Stripe's wording when unparsable."""
    joiner = " OR " if " OR " in query else " AND "
    if " OR " in query and " AND " in query:
        raise invalid("Search queries cannot combine AND and OR.", "query")
    clauses = [_clause(part.strip(), fields) for part in query.split(joiner) if part.strip()]
    if not clauses:
        raise invalid("The query must not be empty.", "query")
    if joiner == " OR ":
        return lambda obj: any(clause(obj) for clause in clauses)
    return lambda obj: all(clause(obj) for clause in clauses)


def _clause(source: str, fields: set[str]) -> Callable[[Obj], bool]:
    match = _CLAUSE.match(source)
    if match is None:
        raise invalid(f"Invalid search query: could not parse `{source}`.", "query")
    field = match.group("field").split("[")[0]
    if field not in fields:
        raise invalid(f"Field `{field}` is not a supported search field.", "query")
    key = match.group("key")
    op = match.group("op")
    raw = match.group("quoted") or match.group("dquoted")
    bare = match.group("bare")
    value: str | None = raw if raw is not None else bare
    if raw is None and bare == "null":
        value = None
    negate = bool(match.group("neg"))

    def actual(obj: Obj) -> Any:
        found = obj.get(field)
        if key is not None:
            found = (found or {}).get(key)
        return found

    def test(obj: Obj) -> bool:
        found = actual(obj)
        if op == ":":
            return found == value if value is not None else found in (None, "")
        if op == "~":
            return value is not None and found is not None and value.lower() in str(found).lower()
        if found is None or value is None:
            return False
        number, bound = float(found), float(value)
        return {
            ">": number > bound,
            "<": number < bound,
            ">=": number >= bound,
            "<=": number <= bound,
        }[op]

    return (lambda obj: not test(obj)) if negate else test


def search_page(items: list[Obj], params: Params, url: str, render: Callable[[Obj], Obj]) -> Obj:
    """A `search_result` object: `limit` (default 10), the opaque `page` cursor, `next_page`."""
    limit = integer(params, "limit", 10)
    assert limit is not None
    if not 1 <= limit <= 100:
        raise invalid("limit must be between 1 and 100", "limit")
    token = text(params, "page")
    start = 0
    if token:
        if not token.startswith(PAGE_PREFIX) or not token[len(PAGE_PREFIX) :].isdigit():
            raise invalid("Invalid page token.", "page")
        start = int(token[len(PAGE_PREFIX) :])
    chosen = items[start : start + limit]
    has_more = start + limit < len(items)
    return {
        "object": "search_result",
        "data": [render(item) for item in chosen],
        "has_more": has_more,
        "next_page": f"{PAGE_PREFIX}{start + limit}" if has_more else None,
        "url": url,
    }
