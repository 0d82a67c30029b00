"""The handler API: what a sync handler implements and what it gets with each call.

A handler has a `name`, says which events it `wants` from the row's columns alone (source, type,
object type, customer; never the payload, so the dispatcher can decide without decoding it), and
either handles one event at a time (`handle`) or a batch of consecutive events of one customer
(`handle_batch`, for batched writes such as Salesforce composite calls).

Handlers must be idempotent from stored state (identity table, look-ups by `metadata`, upserts by
external id): the idempotency key only covers a crash retry within Stripe's 24-hour key window,
and a replay days later must do no harm.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import structlog

from state.records import LoggedEvent

if TYPE_CHECKING:
    from handlers.clients import HandlerClients, SalesforceApi, StripeApi

log = structlog.get_logger("handlers")


@runtime_checkable
class Handler(Protocol):
    """Applies one event at a time."""

    name: str

    def wants(self, event: LoggedEvent) -> bool: ...

    async def handle(self, event: LoggedEvent, ctx: HandlerContext) -> None: ...


@runtime_checkable
class BatchHandler(Protocol):
    """Applies up to `max_batch` consecutive wanted events of one customer in one call; a failure
    fails the whole batch (it is retried whole, so it must be idempotent as a whole)."""

    name: str
    max_batch: int

    def wants(self, event: LoggedEvent) -> bool: ...

    async def handle_batch(self, events: Sequence[LoggedEvent], ctx: HandlerContext) -> None: ...


def idempotency_key(handler: str, event: LoggedEvent) -> str:
    return f"sfstripe:{handler}:{event.source_event_id}"


class HandlerContext:
    """What one handler call gets: the API clients (behind the write switch), an idempotency
    key per event and a logger bound to the event. Built per call, so everything is lazy."""

    __slots__ = ("_clients", "_log", "events", "handler", "replay")

    def __init__(
        self,
        handler: str,
        events: Sequence[LoggedEvent],
        clients: HandlerClients,
        *,
        replay: bool = False,
    ) -> None:
        self.handler = handler
        self.events = events
        self.replay = replay
        self._clients = clients
        self._log: structlog.stdlib.BoundLogger | None = None

    @property
    def event(self) -> LoggedEvent:
        """The (first) event of this call."""
        return self.events[0]

    @property
    def idempotency_key(self) -> str:
        """`sfstripe:<handler>:<source_event_id>` of the (first) event."""
        return idempotency_key(self.handler, self.events[0])

    def key_for(self, event: LoggedEvent) -> str:
        return idempotency_key(self.handler, event)

    @property
    def writes_enabled(self) -> bool:
        """False in shadow mode (and in a dry-run replay): writes are logged, not sent."""
        return self._clients.writes_enabled

    @property
    def log(self) -> structlog.stdlib.BoundLogger:
        if self._log is None:
            first = self.events[0]
            bound: structlog.stdlib.BoundLogger = log.bind(
                handler=self.handler, offset=first.offset, customer=first.customer, seq=first.seq
            )
            if len(self.events) > 1:
                bound = bound.bind(events=len(self.events), last_seq=self.events[-1].seq)
            if self.replay:
                bound = bound.bind(replay=True)
            self._log = bound
        return self._log

    @property
    def stripe(self) -> StripeApi | None:
        """None when Stripe is off."""
        return self._clients.stripe_for(self)

    @property
    def salesforce(self) -> SalesforceApi | None:
        """None when Salesforce is off."""
        return self._clients.salesforce_for(self)


@dataclass(frozen=True, slots=True)
class Registered:
    """A handler as the runtime calls it: single-event handlers are batches of one."""

    name: str
    wants: Callable[[LoggedEvent], bool]
    apply: Callable[[Sequence[LoggedEvent], HandlerContext], Awaitable[None]]
    max_batch: int


def registered(handler: Handler | BatchHandler) -> Registered:
    if isinstance(handler, BatchHandler) and hasattr(handler, "handle_batch"):
        if handler.max_batch < 1:
            raise ValueError(f"handler {handler.name}: max_batch must be at least 1")
        return Registered(handler.name, handler.wants, handler.handle_batch, handler.max_batch)
    if not isinstance(handler, Handler):
        raise TypeError(f"{handler!r} is neither a Handler nor a BatchHandler")
    single = handler

    async def apply(events: Sequence[LoggedEvent], ctx: HandlerContext) -> None:
        await single.handle(events[0], ctx)

    return Registered(single.name, single.wants, apply, 1)
