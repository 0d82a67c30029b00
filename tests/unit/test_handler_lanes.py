"""Lane bookkeeping: the low-water floor, the link rule's "done through", the ready queue."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import anyio

from handlers.lanes import Lane, ReadyLanes
from handlers.links import is_link, joining_marker
from state.records import LoggedEvent, Source

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def logged(
    offset: int,
    seq: int,
    *,
    customer: str = "001A",
    source: Source = "stripe",
    type_: str = "x",
    payload: object = None,
) -> LoggedEvent:
    return LoggedEvent(
        offset=offset,
        customer=customer,
        seq=seq,
        source=source,
        source_event_id=f"e{offset}",
        type=type_,
        object_type=None,
        object_id=None,
        occurred_at=WHEN,
        ingested_at=WHEN,
        payload=json.dumps(payload or {}),
    )


def test_floor_follows_what_is_outstanding() -> None:
    lane = Lane("001A", checkpoint=3, seen_seq=3)
    assert lane.floor() is None
    lane.pending.extend([logged(10, 4), logged(12, 5)])
    assert lane.floor() == 10
    lane.pending.clear()
    lane.overflow, lane.overflow_floor = True, 15
    assert lane.floor() == 15
    lane.parked = 7
    assert lane.floor() is None  # parked lanes do not hold the low-water offset back
    lane.parked, lane.catching_up = None, 8
    assert lane.floor() is None


def test_done_through() -> None:
    lane = Lane("stripe:cus_1", checkpoint=2, seen_seq=2)
    assert lane.done_through(2)
    assert lane.done_through(5)  # nothing outstanding: the reader passed it all
    lane.pending.append(logged(10, 3))
    assert not lane.done_through(3)
    assert lane.done_through(2)
    lane.pending.clear()
    lane.overflow, lane.seen_seq = True, 4
    assert lane.done_through(4)
    assert not lane.done_through(5)
    lane.overflow, lane.parked, lane.parked_seq = False, 1, 3
    assert not lane.done_through(3)


def test_link_markers() -> None:
    body = {"alias": "stripe:cus_1", "customer": "001A", "alias_last_seq": 4}
    joining = logged(20, 7, customer="001A", source="sfstripe", type_="sfstripe.link", payload=body)
    closing = logged(
        19, 4, customer="stripe:cus_1", source="sfstripe", type_="sfstripe.link", payload=body
    )
    other = logged(21, 8, customer="001A", source="stripe", type_="sfstripe.link", payload=body)
    assert is_link(joining) and is_link(closing) and not is_link(other)
    marker = joining_marker(joining)
    assert marker is not None and (marker.alias, marker.alias_last_seq) == ("stripe:cus_1", 4)
    assert joining_marker(closing) is None
    assert joining_marker(other) is None
    broken = logged(
        22, 9, customer="001A", source="sfstripe", type_="sfstripe.link", payload={"nope": 1}
    )
    assert joining_marker(broken) is None


async def test_ready_lanes_hand_each_lane_to_one_waiting_worker() -> None:
    ready = ReadyLanes()
    got: list[object] = []

    async def worker() -> None:
        while (item := await ready.get()) is not None:
            got.append(item)

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(worker)
        await anyio.sleep(0.01)
        for n in range(5):
            ready.put((n, n))  # type: ignore[arg-type]
        await anyio.sleep(0.01)
        ready.close()
    assert sorted(got) == [(n, n) for n in range(5)]  # type: ignore[type-var]
