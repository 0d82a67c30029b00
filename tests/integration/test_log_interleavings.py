"""Hypothesis drives concurrent writers and a reader against the log's invariants."""

from __future__ import annotations

from collections import defaultdict

import anyio
import anyio.lowlevel
import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from state.log import EventLog
from state.records import SourcePosition
from tests.events import event

# Both ways of appending keep the same rules (see tests/conftest.py: append_path).
pytestmark = pytest.mark.usefixtures("append_path")

# An event is (id, customer) drawn from small pools, so duplicates and shared customers abound.
events_st = st.tuples(st.integers(0, 40), st.sampled_from(["001A", "001B", "stripe:cus_1"]))
batch_st = st.lists(events_st, min_size=0, max_size=8)
writer_st = st.lists(batch_st, min_size=1, max_size=5)


async def _reset(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await conn.execute(
            "TRUNCATE events, identity_links, source_positions; UPDATE log_head SET last_offset = 0"
        )


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(writers=st.lists(writer_st, min_size=2, max_size=4), link_after=st.integers(0, 3))
async def test_concurrent_writers_keep_every_invariant(
    pool: asyncpg.Pool, writers: list[list[list[tuple[int, str]]]], link_after: int
) -> None:
    await _reset(pool)
    stored_by_writer: dict[int, list[int]] = defaultdict(list)
    reader_violations: list[str] = []
    done = anyio.Event()

    async def write(number: int, batches: list[list[tuple[int, str]]]) -> None:
        log = EventLog(pool)  # each writer has its own memory, as separate processes would
        for index, batch in enumerate(batches):
            if number == 0 and index == link_after:
                await log.link("stripe:cus_1", "001A")
            result = await log.append(
                [event(f"evt_{i}", customer=c) for i, c in batch],
                [SourcePosition("stripe", f"writer{number}", str(index))],
            )
            stored_by_writer[number] += [s.offset for s in result.stored]

    async def read() -> None:
        log = EventLog(pool)
        seen: set[int] = set()
        highest = 0
        while not done.is_set():
            for row in await log.read(0, 10_000):
                if row.offset not in seen and row.offset <= highest:
                    reader_violations.append(f"offset {row.offset} appeared after {highest}")
                seen.add(row.offset)
                highest = max(highest, row.offset)
            await anyio.lowlevel.checkpoint()

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            async with anyio.create_task_group() as writing:
                for number, batches in enumerate(writers):
                    writing.start_soon(write, number, batches)
            done.set()

    rows = await EventLog(pool).read(0, 100_000)
    source_rows = [r for r in rows if r.source == "stripe"]
    submitted = {i for batches in writers for batch in batches for i, _ in batch}
    # 1. every distinct event is stored exactly once
    assert sorted(r.source_event_id for r in source_rows) == sorted(f"evt_{i}" for i in submitted)
    # 2. per customer, seq is 1..n without gaps, in offset order
    by_customer: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        by_customer[row.customer].append(row.seq)
    for seqs in by_customer.values():
        assert seqs == list(range(1, len(seqs) + 1))
    # offsets themselves are gapless
    assert [r.offset for r in rows] == list(range(1, len(rows) + 1))
    # 3. what one writer delivered keeps its order
    for offsets in stored_by_writer.values():
        assert offsets == sorted(offsets)
    # 4. no reader saw a late, lower offset
    assert reader_violations == []
    # 5. each writer's position is that of its last committed batch
    for number, batches in enumerate(writers):
        assert await EventLog(pool).position("stripe", f"writer{number}") == str(len(batches) - 1)
    # Once linked, the alias's events land in the account's stream.
    linked_at = next((r.offset for r in rows if r.source_event_id.endswith(":joined")), None)
    if linked_at is not None:
        assert all(r.customer != "stripe:cus_1" for r in rows if r.offset > linked_at)
