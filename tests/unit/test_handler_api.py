"""The handler API: registration, the context's key and logger, the registry and its hook."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
import structlog.testing

from handlers.api import HandlerContext, registered
from handlers.clients import HandlerClients
from handlers.registry import TEST_HOOK, RegistryError, registered_handlers
from state.records import LoggedEvent

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def logged(seq: int, event_id: str = "evt_1", customer: str = "001A") -> LoggedEvent:
    return LoggedEvent(
        offset=100 + seq,
        customer=customer,
        seq=seq,
        source="stripe",
        source_event_id=event_id,
        type="invoice.paid",
        object_type="invoice",
        object_id="in_1",
        occurred_at=WHEN,
        ingested_at=WHEN,
        payload="{}",
    )


class One:
    name = "one"

    def __init__(self) -> None:
        self.seen: list[int] = []

    def wants(self, event: LoggedEvent) -> bool:
        return event.type.startswith("invoice.")

    async def handle(self, event: LoggedEvent, ctx: HandlerContext) -> None:
        self.seen.append(event.seq)


class Many:
    name = "many"
    max_batch = 3

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def wants(self, event: LoggedEvent) -> bool:
        return True

    async def handle_batch(self, events: Sequence[LoggedEvent], ctx: HandlerContext) -> None:
        self.batches.append([e.seq for e in events])


async def test_single_handlers_get_one_event_per_call() -> None:
    one = One()
    entry = registered(one)
    assert (entry.name, entry.max_batch) == ("one", 1)
    assert entry.wants(logged(1))
    await entry.apply([logged(1)], HandlerContext("one", [logged(1)], HandlerClients()))
    assert one.seen == [1]


async def test_batch_handlers_get_the_batch() -> None:
    many = Many()
    entry = registered(many)
    assert entry.max_batch == 3
    events = [logged(1), logged(2)]
    await entry.apply(events, HandlerContext("many", events, HandlerClients()))
    assert many.batches == [[1, 2]]


def test_not_a_handler_is_refused() -> None:
    with pytest.raises(TypeError):
        registered(object())  # type: ignore[arg-type]


def test_context_key_and_bound_logger() -> None:
    events = [logged(4, "evt_A"), logged(5, "evt_B")]
    ctx = HandlerContext("sync", events, HandlerClients(writes_enabled=False))
    assert ctx.idempotency_key == "sfstripe:sync:evt_A"
    assert ctx.key_for(events[1]) == "sfstripe:sync:evt_B"
    assert ctx.writes_enabled is False
    assert ctx.stripe is None and ctx.salesforce is None
    with structlog.testing.capture_logs() as logs:
        ctx.log.info("hello")
    assert logs[0]["event"] == "hello"
    assert {k: logs[0][k] for k in ("handler", "offset", "customer", "seq", "events")} == {
        "handler": "sync",
        "offset": 104,
        "customer": "001A",
        "seq": 4,
        "events": 2,
    }


def test_registry_is_empty_in_production() -> None:
    assert registered_handlers({}) == []


def test_test_hook_adds_handlers(tmp_path: object) -> None:
    found = registered_handlers({TEST_HOOK: "tests.unit.test_handler_api:hooked"})
    assert [h.name for h in found] == ["one", "many"]


def hooked() -> list[object]:
    return [One(), Many()]


def twice() -> list[object]:
    return [One(), One()]


class BadName(One):
    name = "Bad Name"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("tests.unit.test_handler_api:twice", "share a name"),
        ("tests.unit.test_handler_api:BadName", "handler name"),
        ("tests.unit.nowhere:x", "cannot load"),
        ("tests.unit.test_handler_api:missing", "cannot load"),
    ],
)
def test_registry_refuses_bad_handlers(spec: str, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        registered_handlers({TEST_HOOK: spec})
