"""Backpressure: a slow handler keeps the dispatcher's memory bounded and slows its reading; a
waiting (parked, retrying) customer holds no memory and does not slow the others."""

from __future__ import annotations

import anyio
import asyncpg

from handlers.errors import PermanentError, RetryableError
from state.log import EventLog
from state.records import LoggedEvent
from tests.dispatching import applied_through, dispatcher, running
from tests.events import event
from tests.handler_doubles import Recorder
from tests.waiting import wait_until

BOUNDS = {"buffer_events": 100, "lane_events": 10, "page_size": 50, "concurrency": 4}


async def test_a_slow_handler_bounds_memory_and_pauses_reading(
    pool: asyncpg.Pool, dsn: str, event_log: EventLog
) -> None:
    for chunk in range(4):
        await event_log.append([event(f"e{chunk}-{i}", customer=f"c{i % 20}") for i in range(500)])
    speed = {"delay": 0.01}
    slow = Recorder(delay=lambda e: speed["delay"])
    held: list[int] = []
    async with running(dispatcher(pool, dsn, [slow], **BOUNDS)) as d:
        for _ in range(40):
            await anyio.sleep(0.025)
            held.append(d.held_events)
        read_while_slow = d.read_offset
        applied_while_slow = len(slow.applied)
        speed["delay"] = 0.0
        await applied_through(d, 2000, within=30)
    # Memory: what the lanes hold never exceeds the bound by more than a page.
    assert max(held) <= BOUNDS["buffer_events"] + BOUNDS["page_size"]
    assert max(held) >= BOUNDS["buffer_events"] // 2  # it did fill up (the test can fail)
    # Reading: it stopped about the bound ahead of what was applied, far from the head.
    assert read_while_slow < 2000 / 2
    assert read_while_slow - applied_while_slow <= BOUNDS["buffer_events"] + 3 * BOUNDS["page_size"]
    for n in range(20):
        assert slow.seqs(f"c{n}") == list(range(1, 101))
    assert not slow.overlaps


async def test_one_busy_customer_overflows_to_the_log_and_keeps_order(
    pool: asyncpg.Pool, dsn: str, event_log: EventLog
) -> None:
    await event_log.append([event(f"hot{i}", customer="hot") for i in range(300)])
    recorder = Recorder(delay=0.001)
    async with running(dispatcher(pool, dsn, [recorder], **BOUNDS)) as d:
        peak = 0
        while d.low_water("recorder") < 300:
            peak = max(peak, d.held_events)
            await anyio.sleep(0.005)
    assert recorder.seqs("hot") == list(range(1, 301))
    assert peak <= BOUNDS["lane_events"]


async def test_waiting_customers_hold_no_memory_and_others_go_on(
    pool: asyncpg.Pool, dsn: str, event_log: EventLog
) -> None:
    def fail(e: LoggedEvent, attempt: int) -> BaseException | None:
        if e.customer == "parked" and e.seq == 1:
            return PermanentError("stuck")
        if e.customer == "retrying" and e.seq == 1:
            return RetryableError("later")
        return None

    recorder = Recorder(fail=fail)
    options = {**BOUNDS, "retry_first_s": 60.0, "retry_max_s": 60.0}
    async with running(dispatcher(pool, dsn, [recorder], **options)) as d:
        await event_log.append([event("p0", "parked"), event("r0", "retrying")])
        await wait_until(lambda: _retrying(pool))
        for chunk in range(6):
            batch = []
            for i in range(50):
                batch += [event(f"p{chunk}-{i}", "parked"), event(f"r{chunk}-{i}", "retrying")]
                batch.append(event(f"o{chunk}-{i}", "other"))
            await event_log.append(batch)
        head, _ = await event_log.summary()
        await applied_through(d, 1)
        await wait_until(lambda: _applied(recorder, "other", 300))
        assert d.held_events == 0
        assert d.read_offset == head
    assert recorder.seqs("parked") == []
    assert recorder.seqs("retrying") == []


async def _retrying(pool: asyncpg.Pool) -> bool:
    async with pool.acquire() as conn:
        return bool(await conn.fetchval("SELECT count(*) FROM handler_retries"))


async def _applied(recorder: Recorder, customer: str, count: int) -> bool:
    return len(recorder.seqs(customer)) >= count
