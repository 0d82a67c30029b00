"""The log's guarantees, one by one, on a real PostgreSQL."""

from __future__ import annotations

import json

import anyio
import asyncpg
import pytest

from state.log import AliasConflict, EventLog
from state.records import Link, SourcePosition
from state.wakeup import AppendWakeup
from tests.events import event

# Both ways of appending keep the same rules (see tests/conftest.py: append_path).
pytestmark = pytest.mark.usefixtures("append_path")


async def test_appends_in_input_order_with_gapless_seq_per_customer(event_log: EventLog) -> None:
    batch = [event(f"e{i}", customer=f"001{i % 3}") for i in range(9)]
    result = await event_log.append(batch)

    assert [s.offset for s in result.stored] == list(range(1, 10))
    rows = await event_log.read(0, 100)
    assert [r.source_event_id for r in rows] == [f"e{i}" for i in range(9)]
    for customer in ("0010", "0011", "0012"):
        seqs = [r.seq for r in await event_log.read_customer(customer, 0, 100)]
        assert seqs == [1, 2, 3]


async def test_duplicate_is_a_reported_no_op_in_any_stream(event_log: EventLog) -> None:
    first = await event_log.append([event("evt_1", customer="001A")])
    again = await event_log.append(
        [event("evt_1", customer="001B"), event("evt_2"), event("evt_2")]
    )

    assert first.duplicates == 0
    assert again.outcomes[0] is None
    assert again.outcomes[1] is not None
    assert again.outcomes[2] is None
    assert again.duplicates == 2
    assert [r.source_event_id for r in await event_log.read(0, 10)] == ["evt_1", "evt_2"]
    assert await event_log.read_customer("001B", 0, 10) == []


async def test_same_id_from_different_sources_is_two_events(event_log: EventLog) -> None:
    result = await event_log.append([event("x", source="stripe"), event("x", source="salesforce")])
    assert result.duplicates == 0


async def test_duplicate_unknown_to_this_process_is_found_in_the_database(
    pool: asyncpg.Pool,
) -> None:
    await EventLog(pool).append([event("evt_1"), event("evt_2", customer="001B")])
    other_process = EventLog(pool)  # its memory of stored keys is empty

    result = await other_process.append([event("evt_0"), event("evt_1"), event("evt_3")])

    assert [o is not None for o in result.outcomes] == [True, False, True]
    rows = await other_process.read_customer("001A", 0, 10)
    assert [(r.source_event_id, r.seq) for r in rows] == [
        ("evt_1", 1),
        ("evt_0", 2),
        ("evt_3", 3),
    ]


async def test_two_writers_keep_seq_gapless(pool: asyncpg.Pool) -> None:
    left, right = EventLog(pool), EventLog(pool)
    for i in range(5):
        await left.append([event(f"l{i}")])
        await right.append([event(f"r{i}")])
    seqs = [r.seq for r in await left.read_customer("001A", 0, 100)]
    assert seqs == list(range(1, 11))


async def test_position_commits_with_its_events_or_not_at_all(event_log: EventLog) -> None:
    position = SourcePosition("salesforce", "/data/AccountChangeEvent", "18342977")
    await event_log.append([event("e1")], [position])
    assert await event_log.position("salesforce", "/data/AccountChangeEvent") == "18342977"

    broken = event("e2").__replace__(payload="{not json")  # jsonb refuses it
    later = SourcePosition("salesforce", "/data/AccountChangeEvent", "18343000")
    with pytest.raises(asyncpg.PostgresError):
        await event_log.append([event("e3"), broken], [later])

    assert await event_log.position("salesforce", "/data/AccountChangeEvent") == "18342977"
    assert [r.source_event_id for r in await event_log.read(0, 10)] == ["e1"]
    # The failed batch left nothing behind: the next append continues the same sequences.
    result = await event_log.append([event("e3")])
    assert result.stored[0].offset == 2
    assert result.stored[0].seq == 2


async def test_positions_without_events_still_move(event_log: EventLog) -> None:
    await event_log.append([], [SourcePosition("stripe", "events", "evt_9")])
    assert await event_log.position("stripe", "events") == "evt_9"
    assert (await event_log.summary())[0] == 0


async def test_link_sends_alias_events_to_the_account_with_markers(event_log: EventLog) -> None:
    await event_log.append([event("s1", customer="stripe:cus_1")])
    assert await event_log.link("stripe:cus_1", "001A") is True
    await event_log.append([event("s2", customer="stripe:cus_1")])

    alias_stream = await event_log.read_customer("stripe:cus_1", 0, 10)
    account = await event_log.read_customer("001A", 0, 10)
    assert [(r.source_event_id, r.seq) for r in alias_stream] == [
        ("s1", 1),
        ("link:stripe:cus_1:closed", 2),
    ]
    assert [r.source_event_id for r in account] == ["link:stripe:cus_1:joined", "s2"]
    joined = json.loads(account[0].payload)
    assert joined == {"alias": "stripe:cus_1", "customer": "001A", "alias_last_seq": 2}
    assert account[0].source == "sfstripe"
    assert account[0].type == "sfstripe.link"


async def test_link_of_an_alias_without_stream_writes_no_marker(event_log: EventLog) -> None:
    assert await event_log.link("contact:003A", "001A") is True
    assert await event_log.link("contact:003A", "001A") is False
    assert (await event_log.summary())[0] == 0
    await event_log.append([event("c1", customer="contact:003A", source="salesforce")])
    assert [r.customer for r in await event_log.read(0, 10)] == ["001A"]


async def test_relinking_an_alias_elsewhere_is_refused(event_log: EventLog) -> None:
    await event_log.link("stripe:cus_1", "001A")
    with pytest.raises(AliasConflict):
        await event_log.link("stripe:cus_1", "001B")
    assert await event_log.resolve("stripe:cus_1") == "001A"


async def test_read_ranges(event_log: EventLog) -> None:
    await event_log.append([event(f"e{i}", customer=f"00{i % 2}") for i in range(10)])
    assert [r.offset for r in await event_log.read(3, 4)] == [4, 5, 6, 7]
    assert [r.offset for r in await event_log.read(3, 100, to_offset=5)] == [4, 5]
    assert [r.offset for r in await event_log.read_customer_after_offset("001", 4, 2)] == [6, 8]
    assert [r.seq for r in await event_log.read_customer("000", 2, 100)] == [3, 4, 5]


async def test_readers_are_woken_by_commits(dsn: str, event_log: EventLog) -> None:
    async with AppendWakeup(dsn) as wakeup:
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                seen: list[int] = []

                async def reader() -> None:
                    seen.append(await wakeup.wait_past(0, max_wait=5))

                tg.start_soon(reader)
                await anyio.sleep(0.05)
                await event_log.append([event("e1"), event("e2")])
        assert seen == [2]
        # A wait with nothing new returns at its timeout with the head it knows.
        assert await wakeup.wait_past(2, max_wait=0.05) == 2


async def test_memory_of_seqs_is_dropped_once_another_writer_appended(pool: asyncpg.Pool) -> None:
    mine, theirs = EventLog(pool), EventLog(pool)
    await mine.append([event("a1", customer="X")])
    await theirs.append([event("b1", customer="X")])
    await mine.append([event("a2", customer="Y")])  # head moved under me: forget X's seq
    result = await mine.append([event("a3", customer="X")])
    assert result.stored[0].seq == 3


async def test_links_made_with_an_append_route_its_events(event_log: EventLog) -> None:
    await event_log.append([event("s1", customer="stripe:cus_1")])
    result = await event_log.append(
        [event("s2", customer="stripe:cus_1")], links=[Link("stripe:cus_1", "001A")]
    )
    assert result.stored[0].customer == "001A"
    # A later link of the same alias elsewhere is refused, not applied, and not fatal.
    result = await event_log.append(
        [event("s3", customer="stripe:cus_1")], links=[Link("stripe:cus_1", "001B")]
    )
    assert result.stored[0].customer == "001A"
    assert [r.source_event_id for r in await event_log.read_customer("001A", 0, 10)] == [
        "link:stripe:cus_1:joined",
        "s2",
        "s3",
    ]


async def test_a_link_made_by_another_process_is_followed_at_once(pool: asyncpg.Pool) -> None:
    mine, theirs = EventLog(pool), EventLog(pool)
    await mine.append([event("s1", customer="stripe:cus_9")])  # unlinked: its own stream
    await theirs.link("stripe:cus_9", "001Z")
    result = await mine.append([event("s2", customer="stripe:cus_9")])
    assert result.stored[0].customer == "001Z"
    # and a link this process learnt keeps routing without asking again
    again = await mine.append([event("s3", customer="stripe:cus_9")])
    assert again.stored[0].customer == "001Z"
