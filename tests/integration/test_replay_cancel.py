"""Cancelling replays: a pending request at once, a running one at a safe point (between
handler calls, never in one), whether the leader or the CLI runs it."""

from __future__ import annotations

import json
from typing import Any

import anyio
import asyncpg

from handlers.api import registered
from handlers.clients import HandlerClients
from handlers.replay import ReplayRange, replay_range
from sfstripe.config import load_settings
from sfstripe.handler_runtime import HandlerRuntime
from sfstripe.replays import CliReplay, LeaderReplays, cancel_request
from state.leadership import LeaderLock
from state.log import EventLog
from state.replay_requests import ReplayRequests
from state.watch import DatabaseWatch
from stream.intake import LogIntake
from tests.events import event
from tests.handler_doubles import Recorder
from tests.waiting import wait_until

CUSTOMERS = ("001", "002")
EVENTS = 40


async def _fill(event_log: EventLog) -> None:
    await event_log.append([event(f"e{i}", customer=CUSTOMERS[i % 2]) for i in range(EVENTS)])


def _slow() -> Recorder:
    return Recorder(delay=0.05)


def _assert_stopped_between_calls(recorder: Recorder, result: dict[str, Any]) -> None:
    """Every call that started finished, per customer a prefix of the stream was applied."""
    assert 0 < result["applied"] < EVENTS, result
    assert len(recorder.started) == len(recorder.applied) == result["applied"]
    assert result["applied"] + result["not_applied"] == result["events"], result
    for customer in CUSTOMERS:
        seqs = recorder.seqs(customer)
        assert seqs == list(range(1, len(seqs) + 1)), (customer, seqs)
    assert not recorder.overlaps


async def _no_pause(source: str) -> list[str]:
    return []


async def _status(pool: asyncpg.Pool, request_id: int, status: str) -> bool:
    found = await ReplayRequests(pool).get(request_id)
    return found is not None and found.status == status


async def test_a_pending_request_is_cancelled_at_once(pool: asyncpg.Pool) -> None:
    requests = ReplayRequests(pool)
    request_id = await requests.insert("log", {"from_offset": 1})
    assert await requests.cancel(request_id) == "cancelled"
    assert await requests.claim(request_id, "leader x") is None  # nobody runs it any more
    found = await requests.get(request_id)
    assert found is not None
    assert (found.status, found.result, found.cancel_requested) == (
        "cancelled",
        {"cancelled": True, "started": False},
        True,
    )
    assert await requests.cancel(request_id) is None  # already ended
    assert await requests.cancel(999_999) is None
    assert await cancel_request(pool, request_id, wait_s=0) == (False, found)


async def test_the_leader_stops_a_running_replay_between_handler_calls(
    pool: asyncpg.Pool, event_log: EventLog
) -> None:
    await _fill(event_log)
    recorder = _slow()
    runtime = HandlerRuntime(load_settings({}), [registered(recorder)])
    intake = LogIntake(EventLog(pool), DatabaseWatch(pool))
    replays = LeaderReplays(pool, runtime, intake, _no_pause, lambda names: None)
    requests = ReplayRequests(pool)
    request_id = await requests.insert("log", {"from_offset": 1})
    async with anyio.create_task_group() as tg:
        tg.start_soon(intake.run)
        tg.start_soon(replays.execute, request_id, None)
        await wait_until(lambda: _applied_at_least(recorder, 6))
        assert await requests.cancel(request_id) == "running"
        await replays.look_for_cancels()  # what the leader's control loop does on NOTIFY
        await wait_until(lambda: _status(pool, request_id, "cancelled"))
        intake.close()
    done = await requests.get(request_id)
    assert done is not None and done.result is not None
    assert done.result["cancelled"] is True and done.result["executed_by"] == "leader"
    _assert_stopped_between_calls(recorder, done.result)
    assert done.processed == done.result["events"]
    (marker,) = [e for e in await event_log.read(EVENTS, 10) if e.type == "sfstripe.replay"]
    assert json.loads(marker.payload)["result"]["cancelled"] is True


async def _applied_at_least(recorder: Recorder, count: int) -> bool:
    return len(recorder.applied) >= count


async def test_the_cli_cancels_the_request_it_follows(
    pool: asyncpg.Pool, dsn: str, event_log: EventLog
) -> None:
    """The leader runs the request; the CLI following it is cancelled (as by Ctrl-C)."""
    await _fill(event_log)
    recorder = _slow()
    runtime = HandlerRuntime(load_settings({}), [registered(recorder)])
    intake = LogIntake(EventLog(pool), DatabaseWatch(pool))
    replays = LeaderReplays(pool, runtime, intake, _no_pause, lambda names: None)
    leader = LeaderLock(dsn)
    assert await leader.try_acquire()
    cli = CliReplay(dsn, pool, runtime, None)
    results: list[dict[str, Any]] = []

    async def follow() -> None:
        results.append(await cli.run("log", {"from_offset": 1}))

    async def lead() -> None:  # the leader's control loop, in short
        while True:
            for request_id in await replays.pending():
                tg.start_soon(replays.execute, request_id, None)
            await replays.look_for_cancels()
            await anyio.sleep(0.05)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(intake.run)
            tg.start_soon(lead)
            tg.start_soon(follow)
            await wait_until(lambda: _applied_at_least(recorder, 6))
            cli.cancel()
            await wait_until(lambda: _has_result(results))
            intake.close()
            tg.cancel_scope.cancel()
    finally:
        await leader.release()
    (result,) = results
    assert result["cancelled"] is True and result["executed_by"] == "leader"
    _assert_stopped_between_calls(recorder, result)
    assert cli.request_id is not None
    assert await _status(pool, cli.request_id, "cancelled")


async def _has_result(results: list[dict[str, Any]]) -> bool:
    return bool(results)


async def test_a_replay_the_cli_runs_itself_stops_when_cancelled(
    pool: asyncpg.Pool, dsn: str, event_log: EventLog
) -> None:
    await _fill(event_log)
    recorder = _slow()
    runtime = HandlerRuntime(load_settings({}), [registered(recorder)])
    cli = CliReplay(dsn, pool, runtime, None)
    results: list[dict[str, Any]] = []

    async def run() -> None:
        results.append(await cli.run("log", {"from_offset": 1}))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await wait_until(lambda: _applied_at_least(recorder, 6))
        cli.cancel()
    (result,) = results
    assert result["cancelled"] is True and result["executed_by"] == "cli"
    _assert_stopped_between_calls(recorder, result)


async def test_a_cancel_does_not_wait_for_a_retry(pool: asyncpg.Pool, event_log: EventLog) -> None:
    """A lane waiting to retry (a long backoff) stops at once: the wait is a safe point."""
    from handlers.errors import RetryableError
    from handlers.replay import ReplayOptions

    await event_log.append([event("a1")])
    recorder = Recorder(fail=lambda e, attempt: RetryableError("later"))
    cancel = anyio.Event()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:

            async def stop_soon() -> None:
                await wait_until(lambda: _attempted(recorder))
                cancel.set()

            tg.start_soon(stop_soon)
            summary = await replay_range(
                pool,
                [registered(recorder)],
                HandlerClients(),
                ReplayRange(from_offset=1),
                options=ReplayOptions(retry_first_s=60, retry_max_s=60),
                cancel=cancel,
            )
    assert (summary.cancelled, summary.applied, summary.not_applied, summary.failed_lanes) == (
        True,
        0,
        1,
        [],
    )


async def _attempted(recorder: Recorder) -> bool:
    return bool(recorder.started)
