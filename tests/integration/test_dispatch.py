"""The dispatcher on a real PostgreSQL: order per lane under concurrency, checkpoints and
restarts, start offsets, batches, and the link rule."""

from __future__ import annotations

import random
from collections import defaultdict

import anyio
import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from state.log import EventLog
from state.records import LoggedEvent
from tests.dispatching import applied_through, dispatcher, running
from tests.events import event
from tests.handler_doubles import BatchRecorder, Recorder


async def _checkpoints(pool: asyncpg.Pool, handler: str) -> dict[str, int]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT customer, last_seq FROM handler_checkpoints WHERE handler = $1", handler
        )
    return {r["customer"]: r["last_seq"] for r in rows}


async def _low_water(pool: asyncpg.Pool, handler: str) -> int | None:
    async with pool.acquire() as conn:
        value: int | None = await conn.fetchval(
            "SELECT low_water FROM handler_offsets WHERE handler = $1", handler
        )
    return value


async def test_applies_each_customer_in_seq_order_and_checkpoints(
    pool: asyncpg.Pool, dsn: str, event_log: EventLog
) -> None:
    await event_log.append([event(f"e{i}", customer=f"001{i % 3}") for i in range(30)])
    recorder = Recorder()
    async with running(dispatcher(pool, dsn, [recorder])) as d:
        await applied_through(d, 30)
    for customer in ("0010", "0011", "0012"):
        assert recorder.seqs(customer) == list(range(1, 11))
    assert not recorder.overlaps
    assert recorder.keys[0] == "sfstripe:recorder:e0"
    assert await _checkpoints(pool, "recorder") == {"0010": 10, "0011": 10, "0012": 10}
    assert await _low_water(pool, "recorder") == 30


# Per event: its customer (of 5) and how long its handler call takes (0-3 ms).
events_st = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 3)), min_size=1, max_size=60)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan=events_st, batches=st.integers(1, 4), concurrency=st.integers(1, 6))
async def test_order_per_customer_under_concurrency(
    pool: asyncpg.Pool, dsn: str, plan: list[tuple[int, int]], batches: int, concurrency: int
) -> None:
    async with pool.acquire() as conn:
        await conn.execute(
            "TRUNCATE events, identity_links, handler_offsets, handler_checkpoints;"
            " UPDATE log_head SET last_offset = 0"
        )
    delays = {f"h{i}": ms / 1000 for i, (_, ms) in enumerate(plan)}
    everything = Recorder("all", delay=lambda e: delays[e.source_event_id])
    some = Recorder("some", wants=lambda e: e.customer != "0012", delay=0.001)
    event_log = EventLog(pool)
    chunks = [plan[i::batches] for i in range(batches)]
    async with running(dispatcher(pool, dsn, [everything, some], concurrency=concurrency)) as d:
        index = 0
        for chunk in chunks:  # appended while dispatching, in several transactions
            await event_log.append(
                [event(f"h{index + j}", customer=f"001{c}") for j, (c, _) in enumerate(chunk)]
            )
            index += len(chunk)
        await applied_through(d, len(plan))
    expected: dict[str, int] = defaultdict(int)
    for customer, _ in plan:
        expected[f"001{customer}"] += 1
    for recorder in (everything, some):
        assert not recorder.overlaps, recorder.overlaps
        for customer, count in expected.items():
            if recorder is some and customer == "0012":
                assert recorder.seqs(customer) == []
            else:
                assert recorder.seqs(customer) == list(range(1, count + 1))
    assert everything.max_active <= concurrency


async def test_customers_run_side_by_side(
    pool: asyncpg.Pool, dsn: str, event_log: EventLog
) -> None:
    await event_log.append([event(f"e{i}", customer=f"00{i}") for i in range(8)])
    slow = Recorder(delay=0.2)
    async with running(dispatcher(pool, dsn, [slow], concurrency=4)) as d:
        started = anyio.current_time()
        await applied_through(d, 8)
        took = anyio.current_time() - started
    assert slow.max_active == 4
    assert took < 1.2  # 8 calls of 0.2 s, 4 at a time: about 0.4 s


async def test_restart_applies_nothing_twice(
    pool: asyncpg.Pool, dsn: str, event_log: EventLog
) -> None:
    await event_log.append([event(f"a{i}", customer=f"00{i % 2}") for i in range(10)])
    first = Recorder()
    async with running(dispatcher(pool, dsn, [first])) as d:
        await applied_through(d, 10)
    await event_log.append([event(f"b{i}", customer=f"00{i % 3}") for i in range(6)])
    second = Recorder()
    async with running(dispatcher(pool, dsn, [second])) as d:
        await applied_through(d, 16)
    assert len(first.applied) == 10
    assert sorted(e.source_event_id for e in second.applied) == [f"b{i}" for i in range(6)]
    assert await _low_water(pool, "recorder") == 16


async def test_restart_after_a_crash_skips_what_is_checkpointed(
    pool: asyncpg.Pool, dsn: str, event_log: EventLog
) -> None:
    """Low-water behind the checkpoints (as after a crash): the lanes skip what they applied."""
    await event_log.append([event(f"a{i}", customer=f"00{i % 2}") for i in range(10)])
    async with running(dispatcher(pool, dsn, [Recorder()])) as d:
        await applied_through(d, 10)
    async with pool.acquire() as conn:
        await conn.execute("UPDATE handler_offsets SET low_water = 0")
        await conn.execute("UPDATE handler_checkpoints SET last_seq = 3 WHERE customer = '000'")
    again = Recorder()
    async with running(dispatcher(pool, dsn, [again])) as d:
        await applied_through(d, 10)
    assert again.seqs("000") == [4, 5]
    assert again.seqs("001") == []


async def test_a_new_handler_starts_at_the_head_unless_configured(
    pool: asyncpg.Pool, dsn: str, event_log: EventLog
) -> None:
    await event_log.append([event(f"old{i}") for i in range(5)])
    late = Recorder("late")
    early = Recorder("early")
    the_dispatcher = dispatcher(pool, dsn, [late, early], start_offsets={"early": 2})
    async with running(the_dispatcher) as d:
        await event_log.append([event("new0"), event("new1", customer="002")])
        await applied_through(d, 7)
    assert [e.source_event_id for e in late.applied] == ["new0", "new1"]
    assert [e.source_event_id for e in early.applied] == ["old2", "old3", "old4", "new0", "new1"]
    async with pool.acquire() as conn:
        starts = dict(await conn.fetch("SELECT handler, start_offset FROM handler_offsets"))
    assert starts == {"late": 5, "early": 2}


async def test_batch_handlers_get_consecutive_events_of_one_customer(
    pool: asyncpg.Pool, dsn: str, event_log: EventLog
) -> None:
    await event_log.append([event(f"e{i}", customer=f"00{i // 7}") for i in range(14)])
    batcher = BatchRecorder(max_batch=3)
    async with running(dispatcher(pool, dsn, [batcher])) as d:
        await applied_through(d, 14)
    assert batcher.seqs("000") == list(range(1, 8))
    assert all(1 <= len(b) <= 3 for b in batcher.batches)
    assert all(b == list(range(b[0], b[0] + len(b))) for b in batcher.batches)
    assert any(len(b) > 1 for b in batcher.batches)


async def test_link_rule_waits_for_the_alias_stream(
    pool: asyncpg.Pool, dsn: str, event_log: EventLog
) -> None:
    """Events of `stripe:cus_1` are slow; after the link, the account's events must wait until
    the alias stream is applied through the joining marker's alias_last_seq."""
    await event_log.append([event(f"s{i}", customer="stripe:cus_1") for i in range(3)])
    await event_log.link("stripe:cus_1", "001A")
    await event_log.append([event("after", customer="stripe:cus_1"), event("a1", customer="001A")])
    order: list[str] = []

    def delay(e: LoggedEvent) -> float:
        return 0.1 if e.customer == "stripe:cus_1" else 0.0

    recorder = Recorder(delay=delay)
    original = recorder.handle

    async def handle(e: LoggedEvent, ctx: object) -> None:
        await original(e, ctx)  # type: ignore[arg-type]
        order.append(e.source_event_id)

    recorder.handle = handle  # type: ignore[method-assign]
    async with running(dispatcher(pool, dsn, [recorder])) as d:
        head, _ = await event_log.summary()
        await applied_through(d, head)
    closed, joined = "link:stripe:cus_1:closed", "link:stripe:cus_1:joined"
    assert [x for x in order if x.startswith("s") or x == closed] == ["s0", "s1", "s2", closed]
    assert order.index(joined) > order.index(closed)  # the marker itself may be applied
    assert order.index("after") > order.index(closed)
    assert order.index("a1") > order.index(closed)


async def test_evicted_lanes_come_back_with_their_checkpoint(
    pool: asyncpg.Pool, dsn: str, event_log: EventLog
) -> None:
    customers = [f"c{n}" for n in range(20)]
    await event_log.append([event(f"a{c}", customer=c) for c in customers])
    recorder = Recorder()
    async with running(dispatcher(pool, dsn, [recorder], max_lanes=5)) as d:
        await applied_through(d, 20)
        await d.flush()
        await d.flush()
        random.shuffle(customers)
        await event_log.append([event(f"b{c}", customer=c) for c in customers])
        await applied_through(d, 40)
    for c in customers:
        assert recorder.seqs(c) == [1, 2]
