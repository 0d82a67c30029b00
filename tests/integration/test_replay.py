"""Replays on a real PostgreSQL: idempotent, checkpoints untouched, order per lane kept, never
alongside the dispatcher on a lane, and run by whoever holds the leader lock."""

from __future__ import annotations

import json

import anyio
import asyncpg
import pytest

from handlers.api import registered
from handlers.clients import HandlerClients
from handlers.errors import PermanentError
from handlers.replay import ReplayError, ReplayRange, replay_range
from sfstripe.config import load_settings
from sfstripe.handler_runtime import HandlerRuntime
from sfstripe.replays import CliReplay, LeaderReplays, salesforce_position, stripe_position
from state.database import open_pool
from state.leadership import LeaderLock
from state.log import EventLog
from state.records import LoggedEvent
from state.replay_requests import ReplayRequests, stripe_event_created
from state.watch import DatabaseWatch
from stream.intake import LogIntake
from tests.dispatching import applied_through, dispatcher, running
from tests.events import WHEN, event
from tests.handler_doubles import Recorder
from tests.waiting import wait_until


async def _progress_rows(pool: asyncpg.Pool) -> tuple[list[asyncpg.Record], int]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT * FROM handler_checkpoints ORDER BY customer")
        low = await conn.fetchval("SELECT low_water FROM handler_offsets")
    return list(rows), low


async def test_replay_applies_again_in_order_and_moves_no_checkpoint(
    pool: asyncpg.Pool, dsn: str, event_log: EventLog
) -> None:
    await event_log.append([event(f"e{i}", customer=f"00{i % 3}") for i in range(12)])
    recorder = Recorder()
    async with running(dispatcher(pool, dsn, [recorder])) as d:
        await applied_through(d, 12)
    before = await _progress_rows(pool)
    for _ in range(2):
        recorder.applied.clear()
        summary = await replay_range(
            pool, [registered(recorder)], HandlerClients(), ReplayRange(from_offset=1)
        )
        assert (summary.events, summary.applied, summary.failed_lanes) == (12, 12, [])
        for customer in ("000", "001", "002"):
            assert recorder.seqs(customer) == [1, 2, 3, 4]
    assert await _progress_rows(pool) == before
    assert not recorder.overlaps


async def test_replay_selection(pool: asyncpg.Pool, event_log: EventLog) -> None:
    await event_log.append([event(f"e{i}", customer=f"00{i % 2}") for i in range(10)])
    one, other = Recorder("one"), Recorder("other")
    handlers = [registered(one), registered(other)]
    selection = ReplayRange(from_offset=3, to_offset=8, customer="001", handler="one", dry_run=True)
    summary = await replay_range(pool, handlers, HandlerClients(), selection)
    assert [e.offset for e in one.applied] == [4, 6, 8]
    assert other.applied == []
    assert one.writes_enabled == [False, False, False]
    assert (summary.events, summary.applied, summary.to_offset, summary.dry_run) == (3, 3, 8, True)
    with pytest.raises(ReplayError, match="no handler named 'nope'"):
        await replay_range(
            pool, handlers, HandlerClients(), ReplayRange(from_offset=1, handler="nope")
        )


async def test_a_failing_lane_stops_alone(pool: asyncpg.Pool, event_log: EventLog) -> None:
    await event_log.append([event("a1"), event("bad"), event("a3"), event("b1", "002")])

    def fail(e: LoggedEvent, attempt: int) -> BaseException | None:
        return PermanentError("no") if e.source_event_id == "bad" else None

    recorder = Recorder(fail=fail)
    summary = await replay_range(
        pool, [registered(recorder)], HandlerClients(), ReplayRange(from_offset=1)
    )
    assert sorted(e.source_event_id for e in recorder.applied) == ["a1", "b1"]
    assert [(f.customer, f.seq) for f in summary.failed_lanes] == [("001A", 2)]
    assert (summary.applied, summary.not_applied) == (2, 2)


async def test_replay_never_runs_a_lane_alongside_the_dispatcher(
    pool: asyncpg.Pool, dsn: str, event_log: EventLog
) -> None:
    """The same (slow) handler applies live events and replays the older ones at once."""
    await event_log.append([event(f"old{i}", customer=f"00{i % 4}") for i in range(40)])
    recorder = Recorder(delay=0.005)
    runtime = HandlerRuntime(load_settings({}), [registered(recorder)])
    intake = LogIntake(EventLog(pool), DatabaseWatch(pool))
    the_dispatcher = dispatcher(pool, dsn, [recorder], start_offsets={"recorder": 40})
    async with running(the_dispatcher) as d, anyio.create_task_group() as tg:
        tg.start_soon(intake.run)
        replays = LeaderReplays(pool, runtime, intake, _no_pause, lambda names: None)
        request = await ReplayRequests(pool).insert("log", {"from_offset": 1, "to_offset": 40})
        tg.start_soon(replays.execute, request, d)
        for i in range(40):
            await event_log.append([event(f"new{i}", customer=f"00{i % 4}")])
        await wait_until(lambda: _request_status(pool, request, "done"), within=20)
        await applied_through(d, 81)  # 40 old, 40 new, the replay marker
        intake.close()
    assert not recorder.overlaps, recorder.overlaps
    done = await ReplayRequests(pool).get(request)
    assert done is not None and done.result is not None
    assert (done.result["applied"], done.result["executed_by"], done.processed) == (
        40,
        "leader",
        40,
    )
    replay_markers = [e for e in await event_log.read(40, 100) if e.type == "sfstripe.replay"]
    assert [e.customer for e in replay_markers] == ["sfstripe:ops"]


async def _no_pause(source: str) -> list[str]:
    return []


async def _request_status(pool: asyncpg.Pool, request_id: int, status: str) -> bool:
    found = await ReplayRequests(pool).get(request_id)
    return found is not None and found.status == status


async def test_the_cli_replays_itself_when_no_leader_runs(
    pool: asyncpg.Pool, dsn: str, event_log: EventLog
) -> None:
    await event_log.append([event(f"e{i}") for i in range(5)])
    recorder = Recorder()
    runtime = HandlerRuntime(load_settings({}), [registered(recorder)])
    result = await CliReplay(dsn, pool, runtime, None).run("log", {"from_offset": 2})
    assert (result["applied"], result["executed_by"]) == (4, "cli")
    (marker,) = [e for e in await event_log.read(5, 10)]
    assert (marker.customer, marker.type) == ("sfstripe:ops", "sfstripe.replay")
    assert json.loads(marker.payload)["params"] == {"from_offset": 2}


async def test_the_cli_asks_the_leader_and_takes_over_when_it_is_gone(
    pool: asyncpg.Pool, dsn: str, event_log: EventLog
) -> None:
    await event_log.append([event(f"e{i}") for i in range(5)])
    recorder = Recorder()
    runtime = HandlerRuntime(load_settings({}), [registered(recorder)])
    leader = LeaderLock(dsn)
    assert await leader.try_acquire()
    results: list[dict[str, object]] = []

    async def ask() -> None:
        results.append(await CliReplay(dsn, pool, runtime, None).run("log", {"from_offset": 1}))

    async with anyio.create_task_group() as tg:
        tg.start_soon(ask)
        await wait_until(lambda: _has_pending(pool))
        assert recorder.applied == []  # the leader is asked; this one never runs it
        await leader.release()  # the leader dies before it runs the request
    assert results[0]["executed_by"] == "cli"
    assert results[0]["applied"] == 5
    (request,) = await _requests(pool)
    assert request["status"] == "done" and request["claimed_by"].startswith("cli ")


async def _has_pending(pool: asyncpg.Pool) -> bool:
    return bool(await ReplayRequests(pool).pending())


async def _requests(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        return await conn.fetch("SELECT * FROM replay_requests")


async def test_positions_move_with_a_marker(dsn: str, event_log: EventLog) -> None:
    pool = await open_pool(dsn, max_size=2)
    try:
        runtime = HandlerRuntime(load_settings({}), [])
        cli = CliReplay(dsn, pool, runtime, None)
        await cli.run("position", salesforce_position("/data/AccountChangeEvent", 12345))
        await cli.run("position", stripe_position("evt_9", None))
    finally:
        await pool.close()
    assert await event_log.position("salesforce", "/data/AccountChangeEvent") == "12345"
    stored = await event_log.position("stripe", "events")
    assert stored is not None and json.loads(stored) == {
        "id": "evt_9",
        "created": None,
        "floor": None,
    }
    markers = await event_log.read(0, 10)
    assert [json.loads(m.payload)["kind"] for m in markers] == ["position", "position"]


async def test_the_leader_moves_a_position_with_its_source_stopped(
    pool: asyncpg.Pool, event_log: EventLog
) -> None:
    intake = LogIntake(EventLog(pool), DatabaseWatch(pool))
    calls: list[str] = []

    async def pause(source: str) -> list[str]:
        calls.append(f"pause {source}")
        return [f"{source}_poller"]

    def resume(names: list[str]) -> None:
        calls.append(f"resume {names}")

    runtime = HandlerRuntime(load_settings({}), [])
    replays = LeaderReplays(pool, runtime, intake, pause, resume)
    request = await ReplayRequests(pool).insert("position", stripe_position("evt_5", None))
    async with anyio.create_task_group() as tg:
        tg.start_soon(intake.run)
        await replays.execute(request, None)  # type: ignore[arg-type]
        intake.close()
    assert calls == ["pause stripe", "resume ['stripe_poller']"]
    stored = await event_log.position("stripe", "events")
    assert stored is not None and json.loads(stored)["id"] == "evt_5"
    done = await ReplayRequests(pool).get(request)
    assert done is not None and done.status == "done"


async def test_a_moved_stripe_cursor_knows_when_a_logged_event_was_created(
    pool: asyncpg.Pool, event_log: EventLog
) -> None:
    await event_log.append([event("evt_7")])
    created = await stripe_event_created(pool, "evt_7")
    assert created == WHEN
    assert json.loads(stripe_position("evt_7", created)["position"]) == {
        "id": "evt_7",
        "created": int(WHEN.timestamp()),
        "floor": None,
    }
    assert await stripe_event_created(pool, "evt_unknown") is None
