"""A small route table: each resource module registers its endpoints on a `Router`."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from emulators.stripe.account import Account

Obj = dict[str, Any]


class Origin(NamedTuple):
    """What caused a change: an API request (its id and idempotency key) or nothing (clock)."""

    request_id: str | None
    idempotency_key: str | None


AUTOMATIC = Origin(None, None)


@dataclass
class Call:
    """One API request as a handler sees it."""

    account: Account
    params: dict[str, Any]
    path: dict[str, str] = field(default_factory=dict)
    origin: Origin = AUTOMATIC


Handler = Callable[[Call], Obj]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler


class Router:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def route(self, method: str, path: str) -> Callable[[Handler], Handler]:
        """Register `handler` for `method path`; `{name}` segments become `call.path[name]`."""
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path)
        pattern = re.compile(f"^{regex}$")

        def register(handler: Handler) -> Handler:
            self.routes.append(Route(method, pattern, handler))
            return handler

        return register

    def get(self, path: str) -> Callable[[Handler], Handler]:
        return self.route("GET", path)

    def post(self, path: str) -> Callable[[Handler], Handler]:
        return self.route("POST", path)

    def delete(self, path: str) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path)

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str]] | None:
        # Literal paths (`/v1/invoices/create_preview`) win over patterns (`/v1/invoices/{id}`).
        for route in sorted(self.routes, key=lambda route: route.pattern.groups):
            if route.method != method:
                continue
            found = route.pattern.match(path)
            if found:
                return route.handler, found.groupdict()
        return None
