"""Replays as operations: re-applying handlers to a range of the log, and moving a source's
upstream position, each recorded as a `sfstripe.replay` marker in the `sfstripe:ops` stream.

A replay never runs alongside the dispatcher on the same lane. The CLI takes the leader lock
when it is free and runs the replay itself (a daemon starting meanwhile waits as a standby);
when a daemon holds it, the CLI files a request (a row, then NOTIFY) that the leader runs, and
follows its progress. A request whose leader dies is claimed by the next leader or by the CLI.

Cancelling: Ctrl-C in the CLI (or `sfstripe replay cancel ID` from anywhere) cancels a pending
request at once and asks the runner of a running one to stop; the leader learns it on the
control channel, the replay stops at a safe point (between handler calls) and the request
ends `cancelled` with how far it got. A replay the CLI runs itself stops the same way.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Literal

import anyio
import asyncpg
import msgspec
import structlog

from handlers.dispatcher import Dispatcher
from handlers.replay import LaneGuard, ReplayRange, ReplaySummary, replay_range
from metrics.instruments import REPLAYS
from sfstripe.handler_runtime import HandlerRuntime
from sfstripe.progress import ProgressDisplay
from state.control import notify_control
from state.leadership import LeaderLock, instance_name
from state.log import EventLog, marker
from state.records import NewEvent, SourcePosition
from state.replay_requests import FINISHED, Kind, ReplayRequest, ReplayRequests
from stream.intake import LogIntake

log = structlog.get_logger(__name__)

OPS_STREAM = "sfstripe:ops"
REPLAY_TYPE = "sfstripe.replay"
PROGRESS_EVERY_S = 0.5
FOLLOW_EVERY_S = 0.3

Pause = Callable[[str], Awaitable[list[str]]]
Resume = Callable[[list[str]], None]


class ReplayFailed(Exception):
    """The replay could not run; the message says why."""


class ReplayAbandoned(Exception):
    """A second Ctrl-C: the CLI stops following; the request's cancellation goes on."""


def stripe_position(event_id: str, created: datetime | None) -> dict[str, Any]:
    """Request parameters that put the Stripe poller's cursor at `event_id` (the poller then
    re-reads every event after it; what is already logged is a no-op)."""
    cursor = {"id": event_id, "created": int(created.timestamp()) if created else None}
    cursor["floor"] = None
    return {
        "source": "stripe",
        "channel": "events",
        "position": msgspec.json.encode(cursor).decode(),
        "after_event": event_id,
    }


def salesforce_position(channel: str, replay_id: int) -> dict[str, Any]:
    return {"source": "salesforce", "channel": channel, "position": str(replay_id)}


def replay_marker(kind: Kind, params: dict[str, Any], result: dict[str, Any]) -> NewEvent:
    body = {"kind": kind, "by": instance_name(), "params": params, "result": result}
    return marker(OPS_STREAM, f"replay:{uuid.uuid4().hex}", REPLAY_TYPE, body)


def _position(params: dict[str, Any]) -> SourcePosition:
    return SourcePosition(params["source"], params["channel"], params["position"])


class _Progress:
    """Shows progress and, for a request, writes it to the row (at most twice a second)."""

    def __init__(
        self,
        requests: ReplayRequests,
        request_id: int | None,
        display: ProgressDisplay | None,
    ) -> None:
        self._requests = requests
        self._request_id = request_id
        self._display = display
        self._written_at = 0.0
        self.done = 0
        self.total = 0

    async def __call__(self, done: int, total: int) -> None:
        self.done, self.total = done, total
        if self._display is not None:
            self._display.update(done, total)
        now = time.monotonic()
        if self._request_id is not None and now - self._written_at >= PROGRESS_EVERY_S:
            self._written_at = now
            await self._requests.progress(self._request_id, done, total)

    async def final(self) -> None:
        if self._display is not None:
            self._display.finish(self.done, self.total)
        if self._request_id is not None:
            await self._requests.progress(self._request_id, self.done, self.total)


def _in_summary_order(result: dict[str, Any]) -> dict[str, Any]:
    """The summary's keys in the order a local replay prints them (jsonb reorders keys)."""
    order = [*(f.name for f in msgspec.structs.fields(ReplaySummary)), "executed_by"]
    known = {key: result[key] for key in order if key in result}
    return known | {key: value for key, value in result.items() if key not in known}


def _selection(params: dict[str, Any]) -> ReplayRange:
    return msgspec.convert(params, ReplayRange)


async def _log_replay(
    pool: asyncpg.Pool,
    runtime: HandlerRuntime,
    params: dict[str, Any],
    progress: _Progress,
    guard: LaneGuard | None,
    *,
    cancel: anyio.Event | None = None,
) -> dict[str, Any]:
    summary = await replay_range(
        pool,
        runtime.handlers,
        runtime.clients,
        _selection(params),
        options=runtime.replay_options,
        guard=guard,
        progress=progress,
        cancel=cancel,
    )
    await progress.final()
    return summary.as_dict()


class LeaderReplays:
    """Runs the replay requests that reach the leader."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        runtime: HandlerRuntime,
        intake: LogIntake,
        pause_source: Pause,
        resume_sources: Resume,
    ) -> None:
        self._pool = pool
        self._runtime = runtime
        self._intake = intake
        self._requests = ReplayRequests(pool)
        self._pause = pause_source
        self._resume = resume_sources
        self._cancels: dict[int, anyio.Event] = {}  # running log replays, by request

    async def pending(self) -> list[int]:
        return await self._requests.pending()

    async def look_for_cancels(self) -> None:
        """Stop the running replays whose cancellation was asked (at their next safe point)."""
        if not self._cancels:
            return
        for request_id in await self._requests.cancel_asked():
            cancel = self._cancels.get(request_id)
            if cancel is not None and not cancel.is_set():
                log.info("replay_request_cancelling", request_id=request_id)
                cancel.set()

    async def execute(self, request_id: int, dispatcher: Dispatcher) -> None:
        claimed = await self._requests.claim(request_id, f"leader {instance_name()}")
        if claimed is None:
            return
        kind, params = claimed
        log.info("replay_request_started", request_id=request_id, kind=kind, params=params)
        status: Literal["done", "failed", "cancelled"] = "failed"
        try:
            if kind == "log":
                progress = _Progress(self._requests, request_id, None)
                cancel = self._cancels[request_id] = anyio.Event()
                try:
                    await self.look_for_cancels()  # asked before it was claimed and running
                    result = await _log_replay(
                        self._pool, self._runtime, params, progress, dispatcher, cancel=cancel
                    )
                finally:
                    del self._cancels[request_id]
                status = "cancelled" if result.get("cancelled") else "done"
            else:
                result = await self._move(params)  # quick: runs to its end once started
                status = "done"
        except Exception as exc:
            log.exception("replay_request_failed", request_id=request_id)
            result = {"error": f"{type(exc).__name__}: {exc}"}
        except BaseException:
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                await self._requests.finish(
                    request_id, "failed", {"error": "interrupted: the leader stopped"}
                )
            raise
        result["executed_by"] = "leader"
        await self._intake.submit([replay_marker(kind, params, result)])
        await self._requests.finish(request_id, status, result)
        REPLAYS.labels(kind, status).inc()
        log.info("replay_request_finished", request_id=request_id, status=status)

    async def _move(self, params: dict[str, Any]) -> dict[str, Any]:
        """Stop the source's components, commit the position after whatever they had queued
        (the intake commits in order), then start them again: they resume from there."""
        paused = await self._pause(params["source"])
        try:
            await self._intake.submit([], [_position(params)])
        finally:
            self._resume(paused)
        log.info(
            "source_position_moved",
            source=params["source"],
            channel=params["channel"],
            position=params["position"],
            restarted=paused,
        )
        return {"source": params["source"], "channel": params["channel"], "moved": True}


def cancelled_line(result: dict[str, Any], request_id: int | None = None) -> str:
    """One line for an operator: how far a cancelled replay got."""
    what = "replay" if request_id is None else f"replay request {request_id}"
    if result.get("started") is False:
        return f"{what} cancelled before it started"
    return (
        f"{what} cancelled: {result.get('applied', 0)} handler applications done,"
        f" {result.get('events', 0)} events read (offsets {result.get('from_offset')} to"
        f" {result.get('to_offset')}), {result.get('not_applied', 0)} not applied"
    )


async def cancel_request(
    pool: asyncpg.Pool, request_id: int, *, wait_s: float = 30.0
) -> tuple[bool, ReplayRequest | None]:
    """Cancel a replay request (at once if pending; a running one stops at its runner's next
    safe point), tell the leader, and wait up to `wait_s` for it to end. Returns whether this
    call cancelled (or asked to cancel) it, and the request as it is then (None: unknown)."""
    requests = ReplayRequests(pool)
    status = await requests.cancel(request_id)
    if status is None:
        return False, await requests.get(request_id)
    await notify_control(pool, "replay")
    with anyio.move_on_after(wait_s):
        while True:
            request = await requests.get(request_id)
            if request is None or request.status in FINISHED:
                return True, request
            await anyio.sleep(FOLLOW_EVERY_S)
    return True, await requests.get(request_id)


class CliReplay:
    """The CLI's side: run here when the leader lock is free, else ask the leader."""

    def __init__(
        self,
        dsn: str,
        pool: asyncpg.Pool,
        runtime: HandlerRuntime,
        display: ProgressDisplay | None,
        *,
        interruptible: bool = False,
    ) -> None:
        """`interruptible`: Ctrl-C (SIGINT) cancels the replay, a second one stops waiting."""
        self._dsn = dsn
        self._pool = pool
        self._runtime = runtime
        self._display = display
        self._requests = ReplayRequests(pool)
        self._interruptible = interruptible
        self._cancel = anyio.Event()
        self.request_id: int | None = None

    def cancel(self) -> None:
        """Cancel the replay: a request is cancelled (or its runner asked to stop), a replay
        run here stops at its next safe point."""
        self._cancel.set()

    async def run(self, kind: Kind, params: dict[str, Any]) -> dict[str, Any]:
        """The replay's summary (with `cancelled` true when it was cancelled)."""
        if not self._interruptible:
            return await self._run(kind, params)
        outcome: list[dict[str, Any]] = []
        errors: list[Exception] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._on_interrupt, tg.cancel_scope)
            try:
                outcome.append(await self._run(kind, params))
            except Exception as exc:  # raised below, not wrapped in an exception group
                errors.append(exc)
            tg.cancel_scope.cancel()
        if errors:
            raise errors[0]
        if not outcome:
            raise ReplayAbandoned(
                f"stopped waiting; replay request {self.request_id} is being cancelled"
                if self.request_id is not None
                else "stopped waiting for the replay to stop"
            )
        return outcome[0]

    async def _on_interrupt(self, follow: anyio.CancelScope) -> None:
        with anyio.open_signal_receiver(signal.SIGINT) as signals:
            async for _ in signals:
                if self._cancel.is_set():
                    follow.cancel()
                    return
                log.warning(
                    "replay_cancelling",
                    request_id=self.request_id,
                    note="stops at the next safe point (between handler calls);"
                    " Ctrl-C again to stop waiting",
                )
                self.cancel()

    async def _run(self, kind: Kind, params: dict[str, Any]) -> dict[str, Any]:
        async with LeaderLock(self._dsn, role="cli") as lock:
            if await lock.try_acquire(role_when_held="replay"):
                log.info("replay_local", note="no daemon holds the leader lock: replaying here")
                return await self._locally(kind, params, None)
            request_id = self.request_id = await self._requests.insert(kind, params)
            await notify_control(self._pool, "replay")
            log.info("replay_requested", request_id=request_id, note="the running leader runs it")
            return await self._follow(request_id, kind, params, lock)

    async def _locally(
        self, kind: Kind, params: dict[str, Any], request_id: int | None
    ) -> dict[str, Any]:
        try:
            return await self._run_here(kind, params, request_id)
        except BaseException as exc:
            if request_id is not None:
                with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                    await self._requests.finish(
                        request_id, "failed", {"error": f"{type(exc).__name__}: {exc}"}
                    )
            raise

    async def _run_here(
        self, kind: Kind, params: dict[str, Any], request_id: int | None
    ) -> dict[str, Any]:
        event_log = EventLog(self._pool)
        if kind == "log":
            self._runtime.own_salesforce(self._pool)
            progress = _Progress(self._requests, request_id, self._display)
            result = await _log_replay(
                self._pool, self._runtime, params, progress, None, cancel=self._cancel
            )
            result["executed_by"] = "cli"
            await event_log.append([replay_marker(kind, params, result)])
        else:
            result = {"source": params["source"], "channel": params["channel"], "moved": True}
            result["executed_by"] = "cli"
            await event_log.append([replay_marker(kind, params, result)], [_position(params)])
        status: Literal["done", "cancelled"] = "cancelled" if result.get("cancelled") else "done"
        if request_id is not None:
            await self._requests.finish(request_id, status, result)
        REPLAYS.labels(kind, status).inc()
        return result

    async def _follow(
        self, request_id: int, kind: Kind, params: dict[str, Any], lock: LeaderLock
    ) -> dict[str, Any]:
        asked = False
        while True:
            if self._cancel.is_set() and not asked:
                asked = True
                status = await self._requests.cancel(request_id)
                await notify_control(self._pool, "replay")
                log.info("replay_cancel_asked", request_id=request_id, status=status)
            request = await self._requests.get(request_id)
            assert request is not None
            if request.status in FINISHED:
                if self._display is not None and request.total is not None:
                    self._display.finish(request.processed, request.total)
                result = _in_summary_order(request.result or {})
                if request.status == "failed":
                    raise ReplayFailed(str(result.get("error", "the leader could not run it")))
                return result
            if request.status == "running" and request.total and self._display is not None:
                self._display.update(request.processed, request.total)
            if request.status == "pending" and await lock.try_acquire(role_when_held="replay"):
                if await self._requests.claim(request_id, f"cli {instance_name()}") is not None:
                    log.info("replay_claimed", request_id=request_id, note="the leader is gone")
                    return await self._locally(kind, params, request_id)
                await lock.release()
            with anyio.move_on_after(FOLLOW_EVERY_S):
                if asked:
                    await anyio.sleep_forever()
                await self._cancel.wait()  # a Ctrl-C is passed on at once
