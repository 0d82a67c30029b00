"""Replays as operations: re-applying handlers to a range of the log, and moving a source's
upstream position, each recorded as a `sfstripe.replay` marker in the `sfstripe:ops` stream.

A replay never runs alongside the dispatcher on the same lane. The CLI takes the leader lock
when it is free and runs the replay itself (a daemon starting meanwhile waits as a standby);
when a daemon holds it, the CLI files a request (a row, then NOTIFY) that the leader runs, and
follows its progress. A request whose leader dies is claimed by the next leader or by the CLI.
"""

from __future__ import annotations

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
from state.replay_requests import Kind, ReplayRequests
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
) -> dict[str, Any]:
    summary = await replay_range(
        pool,
        runtime.handlers,
        runtime.clients,
        _selection(params),
        options=runtime.replay_options,
        guard=guard,
        progress=progress,
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

    async def pending(self) -> list[int]:
        return await self._requests.pending()

    async def execute(self, request_id: int, dispatcher: Dispatcher) -> None:
        claimed = await self._requests.claim(request_id, f"leader {instance_name()}")
        if claimed is None:
            return
        kind, params = claimed
        log.info("replay_request_started", request_id=request_id, kind=kind, params=params)
        status: Literal["done", "failed"] = "failed"
        try:
            if kind == "log":
                progress = _Progress(self._requests, request_id, None)
                result = await _log_replay(self._pool, self._runtime, params, progress, dispatcher)
            else:
                result = await self._move(params)
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


class CliReplay:
    """The CLI's side: run here when the leader lock is free, else ask the leader."""

    def __init__(
        self,
        dsn: str,
        pool: asyncpg.Pool,
        runtime: HandlerRuntime,
        display: ProgressDisplay | None,
    ) -> None:
        self._dsn = dsn
        self._pool = pool
        self._runtime = runtime
        self._display = display
        self._requests = ReplayRequests(pool)

    async def run(self, kind: Kind, params: dict[str, Any]) -> dict[str, Any]:
        async with LeaderLock(self._dsn, role="cli") as lock:
            if await lock.try_acquire(role_when_held="replay"):
                log.info("replay_local", note="no daemon holds the leader lock: replaying here")
                return await self._locally(kind, params, None)
            request_id = await self._requests.insert(kind, params)
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
            result = await _log_replay(self._pool, self._runtime, params, progress, None)
            result["executed_by"] = "cli"
            await event_log.append([replay_marker(kind, params, result)])
        else:
            result = {"source": params["source"], "channel": params["channel"], "moved": True}
            result["executed_by"] = "cli"
            await event_log.append([replay_marker(kind, params, result)], [_position(params)])
        if request_id is not None:
            await self._requests.finish(request_id, "done", result)
        REPLAYS.labels(kind, "done").inc()
        return result

    async def _follow(
        self, request_id: int, kind: Kind, params: dict[str, Any], lock: LeaderLock
    ) -> dict[str, Any]:
        while True:
            request = await self._requests.get(request_id)
            assert request is not None
            if request.status in ("done", "failed"):
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
            await anyio.sleep(FOLLOW_EVERY_S)
