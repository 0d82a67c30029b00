"""Group commit, backpressure, outage pause and poison isolation of the log intake."""

from __future__ import annotations

import anyio
import asyncpg
import pytest

from state.records import AppendResult, NewEvent, SourcePosition
from state.watch import DatabaseWatch
from stream.intake import IntakeClosed, LogIntake
from tests.events import event
from tests.log_doubles import ControlledLog

# Both ways of appending keep the same rules (see tests/conftest.py: append_path).
pytestmark = pytest.mark.usefixtures("append_path")


async def test_concurrent_submissions_share_commits(pool: asyncpg.Pool) -> None:
    log = ControlledLog(pool)
    intake = LogIntake(log, DatabaseWatch(pool))
    log.gate = anyio.Event()  # hold the first commit so that the others queue up behind it
    results: dict[int, AppendResult] = {}
    all_done = anyio.Event()

    async def submit(n: int) -> None:
        results[n] = await intake.submit([event(f"e{n}", customer=f"c{n % 4}")])
        if len(results) == 50:
            all_done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(intake.run)
        for n in range(50):
            tg.start_soon(submit, n)
        await anyio.sleep(0.1)
        log.gate.set()
        await all_done.wait()
        intake.close()

    assert log.transactions <= 3
    assert all(r.stored for r in results.values())
    assert len(await log.read(0, 100)) == 50


async def test_full_queue_makes_sources_wait(pool: asyncpg.Pool) -> None:
    log = ControlledLog(pool)
    log.gate = anyio.Event()
    intake = LogIntake(log, DatabaseWatch(pool), queue_size=2, max_batch_events=1)
    entered: list[int] = []

    async def submit(n: int) -> None:
        entered.append(n)
        await intake.submit([event(f"e{n}")])

    async with anyio.create_task_group() as tg:
        tg.start_soon(intake.run)
        for n in range(6):
            tg.start_soon(submit, n)
        await anyio.sleep(0.2)
        # one batch is held in the writer, two wait in the queue, the rest wait to get in
        stats = intake._send.statistics()
        assert stats.current_buffer_used == 2
        assert stats.tasks_waiting_send == 3
        log.gate.set()
        await anyio.sleep(0.2)
        intake.close()
    assert len(await log.read(0, 100)) == 6


async def test_outage_pauses_and_retries_without_loss(pool: asyncpg.Pool) -> None:
    log = ControlledLog(pool)
    watch = DatabaseWatch(pool, interval=0.05)
    intake = LogIntake(log, watch)
    log.failures = [ConnectionResetError("gone"), ConnectionRefusedError("still gone")]
    position = SourcePosition("stripe", "events", "evt_2")

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch.run)
        tg.start_soon(intake.run)
        with anyio.fail_after(5):
            result = await intake.submit([event("evt_1"), event("evt_2")], [position])
        intake.close()
        tg.cancel_scope.cancel()

    assert len(result.stored) == 2
    assert await log.position("stripe", "events") == "evt_2"
    assert watch.available


async def test_an_unstorable_event_is_kept_aside_and_its_neighbours_commit(
    pool: asyncpg.Pool,
) -> None:
    log = ControlledLog(pool)
    intake = LogIntake(log, DatabaseWatch(pool))
    log.gate = anyio.Event()
    outcomes: dict[str, AppendResult] = {}
    all_done = anyio.Event()

    async def submit(name: str, events: list[NewEvent], position: str = "") -> None:
        positions = [SourcePosition("stripe", "events", position)] if position else []
        outcomes[name] = await intake.submit(events, positions)
        if len(outcomes) == 3:
            all_done.set()

    poisoned = event("bad").__replace__(payload='{"text": "nul \\u0000 inside"}')
    async with anyio.create_task_group() as tg:
        tg.start_soon(intake.run)
        tg.start_soon(submit, "before", [event("ok1")])
        await anyio.sleep(0.05)
        tg.start_soon(submit, "poison", [event("ok2"), poisoned], "after-bad")
        tg.start_soon(submit, "after", [event("ok3")])
        await anyio.sleep(0.05)
        log.gate.set()
        await all_done.wait()
        intake.close()

    poison = outcomes["poison"]
    assert poison.rejected == [1]
    assert poison.outcomes[0] is not None
    assert poison.duplicates == 0
    assert [r.source_event_id for r in await log.read(0, 10)] == ["ok1", "ok2", "ok3"]
    assert await log.rejected_count() == 1
    # The source is not stuck: its position moved past what can never be stored.
    assert await log.position("stripe", "events") == "after-bad"


async def test_closed_intake_refuses_new_batches_after_draining(pool: asyncpg.Pool) -> None:
    log = ControlledLog(pool)
    intake = LogIntake(log, DatabaseWatch(pool))
    async with anyio.create_task_group() as tg:
        tg.start_soon(intake.run)
        await intake.submit([event("e1")])
        intake.close()
    with pytest.raises(IntakeClosed):
        await intake.submit([event("e2")])
    assert len(await log.read(0, 10)) == 1
