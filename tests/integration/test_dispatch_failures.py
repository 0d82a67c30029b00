"""Retries that survive a restart, dead letters that park one customer's lane, and the
operators' way out (`dlq retry`, `dlq skip`)."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from handlers.dispatcher import Dispatcher
from handlers.errors import PermanentError, RetryableError
from sfstripe import operations
from state.dead_letters import DeadLetters
from state.log import EventLog
from state.records import LoggedEvent
from tests.dispatching import applied_through, dispatcher, running
from tests.events import event
from tests.handler_doubles import Recorder
from tests.waiting import wait_until


def failing(ids: set[str], error: type[Exception] = PermanentError, times: int = 1000):  # type: ignore[no-untyped-def]
    """Fail the events in `ids` for their first `times` attempts."""

    def fail(e: LoggedEvent, attempt: int) -> BaseException | None:
        if e.source_event_id in ids and attempt <= times:
            return error(f"no good: {e.source_event_id}")
        return None

    return fail


async def _retries(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        return await conn.fetch("SELECT * FROM handler_retries")


async def test_retry_schedule_survives_a_restart(
    pool: asyncpg.Pool, dsn: str, event_log: EventLog
) -> None:
    await event_log.append([event("ok1"), event("flaky"), event("ok2"), event("other", "002")])
    first = Recorder(fail=failing({"flaky"}, RetryableError))
    options = {"retry_first_s": 30.0, "retry_max_s": 60.0}  # far in the future
    async with running(dispatcher(pool, dsn, [first], **options)) as d:
        await wait_until(lambda: _has_retry(pool))
        await applied_through(d, 1)
        assert [e.source_event_id for e in first.applied] == ["ok1", "other"]
    (retry,) = await _retries(pool)
    assert (retry["customer"], retry["seq"], retry["attempts"]) == ("001A", 2, 1)
    assert "no good: flaky" in retry["last_error"]
    assert retry["next_at"] > datetime.now(UTC)

    # Restarted, it waits for the persisted time: make it due now, and the lane goes on.
    async with pool.acquire() as conn:
        await conn.execute("UPDATE handler_retries SET next_at = now()")
    second = Recorder()
    async with running(dispatcher(pool, dsn, [second])) as d:
        await applied_through(d, 4)
    assert [e.source_event_id for e in second.applied] == ["flaky", "ok2"]
    assert await _retries(pool) == []


async def _has_retry(pool: asyncpg.Pool) -> bool:
    return bool(await _retries(pool))


async def test_attempts_count_across_restarts_up_to_the_dead_letter(
    pool: asyncpg.Pool, dsn: str, event_log: EventLog
) -> None:
    await event_log.append([event("flaky"), event("next")])
    always = failing({"flaky"}, RetryableError)
    async with running(dispatcher(pool, dsn, [Recorder(fail=always)], max_attempts=5)):
        await wait_until(lambda: _attempts_at_least(pool, 2))
    async with running(dispatcher(pool, dsn, [Recorder(fail=always)], max_attempts=5)):
        await wait_until(lambda: _dead_letters(pool, 1))
    (dead,) = await DeadLetters(pool).listed()
    assert (dead.customer, dead.seq, dead.source_event_id, dead.attempts) == ("001A", 1, "flaky", 5)
    assert "RetryableError" in dead.reason
    assert await _retries(pool) == []


async def _attempts_at_least(pool: asyncpg.Pool, attempts: int) -> bool:
    rows = await _retries(pool)
    return bool(rows) and rows[0]["attempts"] >= attempts


async def _dead_letters(pool: asyncpg.Pool, count: int) -> bool:
    return len(await DeadLetters(pool).listed()) >= count


async def test_permanent_failure_parks_only_that_customer(
    pool: asyncpg.Pool, dsn: str, event_log: EventLog
) -> None:
    await event_log.append(
        [event("a1"), event("bad"), event("a3"), event("b1", "002"), event("b2", "002")]
    )
    recorder = Recorder(fail=failing({"bad"}))
    async with running(dispatcher(pool, dsn, [recorder])) as d:
        await wait_until(lambda: _dead_letters(pool, 1))
        await event_log.append([event("a4"), event("b3", "002")])
        await applied_through(d, 7)  # parked lanes do not hold the low-water offset back
        assert [e.source_event_id for e in recorder.applied if e.customer == "001A"] == ["a1"]
        assert recorder.seqs("002") == [1, 2, 3]
        assert recorder.attempts["001A", 2] == 1  # permanent: no retry
    (dead,) = await DeadLetters(pool).listed()
    assert (dead.handler, dead.customer, dead.seq, dead.offset, dead.status) == (
        "recorder",
        "001A",
        2,
        2,
        "parked",
    )
    assert "PermanentError: no good: bad" in dead.reason


@pytest.mark.parametrize("restart", [False, True], ids=["same-dispatcher", "after-restart"])
async def test_dlq_retry_runs_the_lane_again_from_the_dead_letter(
    pool: asyncpg.Pool, dsn: str, event_log: EventLog, restart: bool
) -> None:
    await event_log.append([event("a1"), event("bad"), event("a3"), event("b1", "002")])
    fixed = {"broken": True}

    def fail(e: LoggedEvent, attempt: int) -> BaseException | None:
        return PermanentError("broken") if e.source_event_id == "bad" and fixed["broken"] else None

    recorder = Recorder(fail=fail)
    first = dispatcher(pool, dsn, [recorder])
    async with running(first) as d:
        await wait_until(lambda: _dead_letters(pool, 1))
        await event_log.append([event(f"b{i}", "002") for i in range(2, 30)])
        await applied_through(d, 31)
        fixed["broken"] = False
        if not restart:
            await _retry_and_check(pool, event_log, d, recorder)
    if restart:
        async with running(dispatcher(pool, dsn, [recorder])) as d:
            await _retry_and_check(pool, event_log, d, recorder)
    assert recorder.seqs("001A") == [1, 2, 3, 4]
    assert recorder.seqs("002") == list(range(1, 30))
    assert await DeadLetters(pool).listed() == []
    (settled,) = await DeadLetters(pool).listed(None)
    assert settled.status == "retried" and settled.settled_at is not None


async def _retry_and_check(
    pool: asyncpg.Pool, event_log: EventLog, d: Dispatcher, recorder: Recorder
) -> None:
    (dead,) = await DeadLetters(pool).listed()
    [retried] = await operations.retry(pool, dead.id, None)
    assert retried.status == "retried"
    await d.reload_dead_letters()  # what the leader does on the control channel's notice
    await event_log.append([event("a5")])
    await wait_until(lambda: _seqs_are(recorder, "001A", [1, 2, 3, 4]))
    await applied_through(d, 32)
    await d.flush()


async def _seqs_are(recorder: Recorder, customer: str, seqs: list[int]) -> bool:
    return recorder.seqs(customer)[-len(seqs) :] == seqs


async def test_dlq_retry_of_a_lane_parked_long_ago_after_a_restart(
    pool: asyncpg.Pool, dsn: str, event_log: EventLog
) -> None:
    """The low-water offset passed the parked lane's later events; retried after a restart,
    the lane reads them back from the log."""
    await event_log.append([event("bad"), event("a2"), event("b1", "002")])
    async with running(dispatcher(pool, dsn, [Recorder(fail=failing({"bad"}))])) as d:
        await wait_until(lambda: _dead_letters(pool, 1))
        await event_log.append([event("a3"), event("b2", "002")])
        await applied_through(d, 5)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT low_water FROM handler_offsets") == 5
    (dead,) = await DeadLetters(pool).listed()
    await operations.retry(pool, None, "001A")  # while no dispatcher runs
    recorder = Recorder()
    async with running(dispatcher(pool, dsn, [recorder])) as d:
        await wait_until(lambda: _seqs_are(recorder, "001A", [1, 2, 3]))
        await d.flush()
    assert [e.source_event_id for e in recorder.applied] == ["bad", "a2", "a3"]
    (settled,) = await DeadLetters(pool).listed(None)
    assert settled.id == dead.id and settled.settled_at is not None


async def test_dlq_skip_goes_on_after_the_dead_letter_and_leaves_a_marker(
    pool: asyncpg.Pool, dsn: str, event_log: EventLog
) -> None:
    await event_log.append([event("a1"), event("bad"), event("a3")])
    recorder = Recorder(fail=failing({"bad"}))
    async with running(dispatcher(pool, dsn, [recorder])) as d:
        await wait_until(lambda: _dead_letters(pool, 1))
        (dead,) = await DeadLetters(pool).listed()
        skipped = await operations.skip(pool, dead.id, "bad data, fixed by hand")
        assert skipped is not None and skipped.status == "skipped"
        assert await operations.skip(pool, dead.id, "again") is None  # not parked any more
        await d.reload_dead_letters()
        await wait_until(lambda: _seqs_are(recorder, "001A", [1, 3, 4]))
    assert [e.source_event_id for e in recorder.applied] == ["a1", "a3", "dlq-skip:1"]
    (marker,) = [e for e in await event_log.read(0, 10) if e.source == "sfstripe"]
    assert (marker.customer, marker.seq, marker.type) == ("001A", 4, "sfstripe.dlq_skip")
    assert '"reason": "bad data, fixed by hand"' in marker.payload
    (row,) = await DeadLetters(pool).listed(None)
    assert row.resolution == "bad data, fixed by hand"


async def test_dlq_retry_of_nothing_changes_nothing(pool: asyncpg.Pool) -> None:
    assert await operations.retry(pool, 99, None) == []
    assert await operations.retry(pool, None, "nobody") == []
