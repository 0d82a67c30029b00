"""One consumer per database: only the leader pulls from the sources and runs the dispatcher.

`sfstripe run` waits for the leader lock (a session-level advisory lock, `state.leadership`)
before it starts them; until then it is a hot standby: it logs `standby`, serves health and
metrics (`sfstripe_leader` 0), and accepts webhooks (appends are idempotent, so two receivers
are harmless). When the leader's session ends, a standby gets the lock within
`STANDBY_POLL_S` and takes over. A leader checks its own session every `LOCK_CHECK_S`: if it
is lost, so may be the lock, and it pauses its dispatcher at once (calls in flight finish, no
new work) while it takes the lock again on a new session. Once it has it (the database is back
and nobody took over meanwhile), dispatch goes on where it was; if another instance leads now,
this one ends its term and becomes a standby.

The leader also listens on the control channel: operators' dead letter actions, replay requests
and their cancellations are picked up at once (and every `CONTROL_POLL_S` in case a
notification was lost).
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
import asyncpg
import structlog

from handlers.dispatcher import Dispatcher
from metrics.instruments import LEADER
from sfstripe.handler_runtime import HandlerRuntime
from sfstripe.replays import LeaderReplays
from sfstripe.supervisor import Component, supervise
from state.control import ControlListener
from state.database import open_pool
from state.leadership import LeaderLock, instance_name
from state.replay_requests import ReplayRequests
from state.watch import CONNECTION_ERRORS, DatabaseWatch
from stream.intake import LogIntake

log = structlog.get_logger(__name__)

STANDBY_POLL_S = 1.0
LOCK_CHECK_S = 1.0
CONTROL_POLL_S = 5.0
DISPATCH_POOL_SIZE = 8
LEADERSHIP = "leadership"  # the cause of a dispatch pause while the lock is taken again


def source_of(component: str) -> str:
    """Components are named `<source>_<what>` (`stripe_poller`, `salesforce_cdc`)."""
    return component.split("_", 1)[0]


class SourceComponents:
    """The sources' pulling components, each under the supervisor, each stoppable on its own
    (a moved upstream position is committed while its source is stopped)."""

    def __init__(self, components: list[tuple[str, Component]]) -> None:
        self._components = dict(components)
        self._scopes: dict[str, anyio.CancelScope] = {}
        self._stopped: dict[str, anyio.Event] = {}
        self._resume: dict[str, anyio.Event] = {}

    async def run(self) -> None:
        async with anyio.create_task_group() as group:
            for name in self._components:
                group.start_soon(self._run_one, name)

    async def _run_one(self, name: str) -> None:
        while True:
            if name in self._resume:
                await self._resume[name].wait()
            self._stopped[name] = anyio.Event()
            try:
                with anyio.CancelScope() as self._scopes[name]:
                    await supervise(name, self._components[name])
                    return
            finally:
                self._stopped[name].set()

    async def pause(self, source: str) -> list[str]:
        """Stop every component of `source` and return their names once they have stopped."""
        names = [name for name in self._components if source_of(name) == source]
        for name in names:
            self._resume[name] = anyio.Event()
            if name in self._scopes:
                self._scopes[name].cancel()
        for name in names:
            if name in self._stopped:
                await self._stopped[name].wait()
        return names

    def resume(self, names: list[str]) -> None:
        for name in names:
            resume = self._resume.pop(name, None)
            if resume is not None:
                resume.set()


class LeaderDuties:
    def __init__(
        self,
        dsn: str,
        pool: asyncpg.Pool,
        intake: LogIntake,
        components: list[tuple[str, Component]],
        runtime: HandlerRuntime,
        *,
        watch: DatabaseWatch,
    ) -> None:
        self._dsn = dsn
        self._pool = pool
        self._intake = intake
        self._watch = watch
        self._components = components
        self._runtime = runtime
        self._lock = LeaderLock(dsn, role="standby")
        self._stopping = False
        self._intake_stopped = False
        self._intake_scope: anyio.CancelScope | None = None
        self._term: anyio.CancelScope | None = None
        self._dispatcher: Dispatcher | None = None
        self.is_leader = False

    async def run(self) -> None:
        """Stand by, lead while the lock is ours, stand by again if it is lost."""
        LEADER.set(0)
        try:
            while not self._stopping:
                if not await self._lock.try_acquire_quietly():
                    log.info(
                        "standby",
                        instance=instance_name(),
                        note="another instance leads; taking over when its session ends",
                    )
                    await self._lock.acquire(STANDBY_POLL_S)
                if self._stopping:
                    break
                try:
                    await self._lead()
                except Exception:
                    log.exception("leader_term_failed")
                # A fresh session for the next term; meanwhile another instance may lead.
                await self._lock.release()
                if not self._stopping:
                    await anyio.sleep(STANDBY_POLL_S)
        finally:
            LEADER.set(0)
            self.is_leader = False
            await self._lock.release()

    async def _lead(self) -> None:
        self.is_leader = True
        LEADER.set(1)
        log.info("leader", instance=instance_name(), handlers=len(self._runtime.handlers))
        interrupted = await ReplayRequests(self._pool).interrupt_running()
        if interrupted:
            log.warning("replay_requests_interrupted", request_ids=interrupted)
        # The dispatcher and replays get a pool of their own: their reads never make the log
        # writer (webhooks) wait for a connection.
        pool = await open_pool(self._dsn, min_size=1, max_size=DISPATCH_POOL_SIZE)
        dispatcher = self._dispatcher = Dispatcher(
            pool,
            self._dsn,
            self._runtime.handlers,
            self._runtime.clients,
            self._runtime.dispatch_options,
            watch=self._watch,
        )
        sources = SourceComponents(self._components)
        replays = LeaderReplays(pool, self._runtime, self._intake, sources.pause, sources.resume)
        try:
            with anyio.CancelScope() as self._term:
                async with anyio.create_task_group() as term:
                    term.start_soon(self._watch_lock, term.cancel_scope, dispatcher)
                    term.start_soon(self._run_sources, sources)
                    if self._runtime.handlers:
                        term.start_soon(self._dispatch, dispatcher, term.cancel_scope)
                    term.start_soon(
                        supervise,
                        "leader_control",
                        lambda: self._control(dispatcher, replays, term.start_soon),
                    )
        finally:
            self._term = None
            self.is_leader = False
            LEADER.set(0)
            with anyio.CancelScope(shield=True):
                with anyio.move_on_after(1):
                    await pool.close()
                pool.terminate()  # a no-op once closed; drops what a stalled server holds
            if not self._stopping:
                log.error("leadership_lost", note="stopped consuming; standing by again")

    async def _watch_lock(self, term: anyio.CancelScope, dispatcher: Dispatcher) -> None:
        while True:
            await anyio.sleep(LOCK_CHECK_S)
            if await self._lock.check():
                continue
            # The session is gone, so may be the lock: no new work until it is ours again.
            if self._runtime.handlers:
                dispatcher.pause(LEADERSHIP, "the leader's database session was lost")
            retaken = await self._lock.retake()
            while retaken is None:  # the database is away: keep trying, quietly
                await anyio.sleep(STANDBY_POLL_S)
                retaken = await self._lock.retake()
            if not retaken:
                log.error("leader_session_lost", note="another instance leads now")
                term.cancel()
                return
            log.info("leader_session_renewed", instance=instance_name())
            dispatcher.resume(LEADERSHIP)

    async def _run_sources(self, sources: SourceComponents) -> None:
        if self._intake_stopped:
            return
        with anyio.CancelScope() as self._intake_scope:
            await sources.run()

    async def _dispatch(self, dispatcher: Dispatcher, term: anyio.CancelScope) -> None:
        await supervise("dispatcher", dispatcher.run)
        if self._stopping:
            term.cancel()  # drained: give the lock up now, a standby may take over

    async def _control(
        self,
        dispatcher: Dispatcher,
        replays: LeaderReplays,
        start_soon: Callable[..., object],
    ) -> None:
        running: set[int] = set()

        async def execute(request_id: int) -> None:
            try:
                await replays.execute(request_id, dispatcher)
            finally:
                running.discard(request_id)

        if self._runtime.handlers:
            await dispatcher.started.wait()
        while not self._stopping:
            try:
                async with ControlListener(self._dsn) as listener:
                    while not self._stopping and listener.listening:
                        await dispatcher.reload_dead_letters()
                        for request_id in await replays.pending():
                            if request_id not in running:
                                running.add(request_id)
                                start_soon(execute, request_id)
                        await replays.look_for_cancels()
                        await listener.take(CONTROL_POLL_S)
            except CONNECTION_ERRORS as exc:
                self._watch.report_failure(exc)
            # The database went away: look again, on a new connection, once it is back.
            await anyio.sleep(STANDBY_POLL_S)
            await self._watch.wait_available()

    def stop_intake(self) -> None:
        """Stop pulling from the sources (first step of the shutdown); no new term starts."""
        self._stopping = True
        self._intake_stopped = True
        if self._intake_scope is not None:
            self._intake_scope.cancel()

    async def drain(self) -> None:
        """Let the dispatcher finish its calls in flight and write its checkpoints."""
        self._stopping = True
        dispatcher = self._dispatcher
        if dispatcher is not None and self.is_leader:
            dispatcher.stop()
            await dispatcher.wait_stopped()
        # A standby, or a leader between terms: nothing in flight.
        if self._term is not None:
            self._term.cancel()
