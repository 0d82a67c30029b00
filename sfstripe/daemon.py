"""`sfstripe run`: wires the components, supervises them, and shuts down in order.

Shutdown on SIGTERM/SIGINT: readiness turns false, the sources stop taking new input, the log
writer commits what it already holds while the dispatcher finishes its handler calls in flight
and writes its checkpoints (both within `shutdown_grace`), and only then is the rest cancelled.
Positions are committed with their events, so whatever was acknowledged is durable.

Only the leader (`sfstripe.leader`) pulls from the sources and dispatches; a second instance
on the same database stands by, serving health, metrics and webhooks.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable

import aiohttp
import anyio
import asyncpg
import structlog
from aiohttp import web

from handlers.clients import SalesforceApi
from handlers.registry import registered_handlers
from metrics.exposition import metrics_app
from metrics.instruments import BUILD_INFO, DATABASE_UP, LOG_HEAD
from sfstripe import __version__
from sfstripe.config import Settings, disabled_source_hints
from sfstripe.customer_sync import check_modes, sync_handlers
from sfstripe.database import database_dsn, migrate_database
from sfstripe.handler_runtime import HandlerRuntime
from sfstripe.health import Readiness, add_health_routes
from sfstripe.leader import LeaderDuties
from sfstripe.salesforce_settings import REFRESH_TOKEN_CREDENTIAL, oauth_settings
from sfstripe.supervisor import Component, supervise
from state.credentials import StoredCredential
from state.database import open_pool
from state.log import EventLog
from state.watch import DatabaseWatch
from stream.intake import LogIntake
from stream.salesforce.auth import SalesforceAuth
from stream.salesforce.cdc_source import CdcOptions, CdcSource
from stream.salesforce.rest import SalesforceRest
from stream.stripe.client import stripe_client
from stream.stripe.poller import StripePoller
from stream.stripe.webhook import MAX_BODY, StripeWebhook, add_webhook_route

log = structlog.get_logger(__name__)


async def _serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


async def _export_database_state(watch: DatabaseWatch) -> None:
    while True:
        DATABASE_UP.set(1 if watch.available else 0)
        await anyio.sleep(1)


class _Sources:
    """The intake side: what the configuration turned on, built from plain settings."""

    def __init__(self, settings: Settings, intake: LogIntake, event_log: EventLog) -> None:
        self.components: list[tuple[str, Component]] = []
        self.webhook: StripeWebhook | None = None
        self.salesforce_api: SalesforceApi | None = None  # for the handlers
        self._closers: list[Callable[[], Awaitable[None]]] = []
        if settings.stripe_enabled:
            self._stripe(settings, intake, event_log)

    def salesforce(
        self, settings: Settings, intake: LogIntake, event_log: EventLog, pool: asyncpg.Pool
    ) -> None:
        if not settings.salesforce_enabled:
            return
        session = aiohttp.ClientSession()
        self._closers.append(session.close)
        auth = SalesforceAuth(
            oauth_settings(settings), session, StoredCredential(pool, REFRESH_TOKEN_CREDENTIAL)
        )
        rest = SalesforceRest(
            auth, session, api_version=settings.sf_api_version, client_tag=settings.sf_client_tag
        )
        source = CdcSource(
            auth,
            rest,
            intake,
            event_log,
            CdcOptions(
                channels=settings.sf_channels,
                api_version=settings.sf_api_version,
                initial_replay=settings.sf_initial_replay,
                on_invalid_replay=settings.sf_on_invalid_replay,
            ),
        )
        self.components.append(("salesforce_cdc", source.run))
        self.salesforce_api = rest
        log.info("source_on", source="salesforce", channels=list(settings.sf_channels))

    def _stripe(self, settings: Settings, intake: LogIntake, event_log: EventLog) -> None:
        assert settings.stripe_api_key is not None  # config validation guarantees it
        mode = settings.effective_stripe_mode
        if mode in ("poll", "both"):
            client, http = stripe_client(
                settings.stripe_api_key.reveal(),
                api_base=settings.stripe_api_base,
                api_version=settings.stripe_api_version,
                max_network_retries=settings.stripe_max_network_retries,
            )
            self._closers.append(http.close_async)
            poller = StripePoller(
                client,
                intake,
                event_log,
                initial=settings.stripe_initial,
                overlap_s=settings.stripe_overlap,
                interval_s=settings.stripe_poll_interval,
            )
            self.components.append(("stripe_poller", poller.run))
        log.info("source_on", source="stripe", mode=mode)

    def webhooks(self, intake: LogIntake, watch: DatabaseWatch, settings: Settings) -> None:
        if settings.stripe_enabled and settings.effective_stripe_mode in ("webhook", "both"):
            self.webhook = StripeWebhook(
                intake,
                watch,
                [secret.reveal() for secret in settings.stripe_webhook_secrets],
                tolerance_s=settings.stripe_webhook_tolerance,
                commit_wait_s=settings.stripe_webhook_wait,
            )

    async def close(self) -> None:
        for close in self._closers:
            await close()


async def _until_signal() -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for received in signals:
            log.info("shutdown_requested", signal=signal.Signals(received).name)
            return


async def _supervise_all(
    settings: Settings,
    watch: DatabaseWatch,
    intake: LogIntake,
    duties: LeaderDuties,
    readiness: Readiness,
) -> None:
    """Run everything until a signal, then stop intake, drain the writer and the dispatcher,
    cancel the rest."""
    async with anyio.create_task_group() as daemon:
        daemon.start_soon(supervise, "database_watch", watch.run)
        daemon.start_soon(_export_database_state, watch)
        writer_done = anyio.Event()

        async def write_log() -> None:
            try:
                await supervise("log_writer", intake.run)
            finally:
                writer_done.set()

        daemon.start_soon(write_log)
        daemon.start_soon(supervise, "leadership", duties.run)
        await _until_signal()
        readiness.shutting_down = True
        # Stop taking input first: a source cancelled mid-batch has not moved its position,
        # so whatever it was holding is fetched again after the restart.
        duties.stop_intake()
        intake.close()
        with anyio.move_on_after(settings.shutdown_grace) as grace:
            async with anyio.create_task_group() as drain:
                drain.start_soon(duties.drain)
                await writer_done.wait()
        if grace.cancelled_caught:
            log.warning("shutdown_grace_exceeded", grace_s=settings.shutdown_grace)
        daemon.cancel_scope.cancel()


async def run_daemon(settings: Settings) -> None:
    BUILD_INFO.info({"version": __version__})
    dsn = await database_dsn(settings)
    await migrate_database(dsn)
    for source, hint in disabled_source_hints(settings).items():
        log.info("source_off", source=source, turn_on=hint)
    pool = await open_pool(dsn)
    runners: list[web.AppRunner] = []
    sources: _Sources | None = None
    runtime: HandlerRuntime | None = None
    try:
        watch = DatabaseWatch(pool)
        event_log = EventLog(pool)
        intake = LogIntake(event_log, watch)
        readiness = Readiness(watch)
        LOG_HEAD.set((await event_log.summary())[0])
        sources = _Sources(settings, intake, event_log)
        sources.salesforce(settings, intake, event_log, pool)
        sources.webhooks(intake, watch, settings)
        if sources.salesforce_api is not None:
            await check_modes(settings, sources.salesforce_api)
        handlers = registered_handlers(builtins=sync_handlers(settings, pool))
        runtime = HandlerRuntime(settings, handlers, salesforce=sources.salesforce_api)
        duties = LeaderDuties(dsn, pool, intake, sources.components, runtime, watch=watch)

        http = web.Application(client_max_size=MAX_BODY)
        add_health_routes(http, readiness)
        if sources.webhook is not None:
            add_webhook_route(http, sources.webhook)
        runners.append(await _serve(http, settings.http_host, settings.http_port))
        runners.append(await _serve(metrics_app(), settings.metrics_host, settings.metrics_port))
        log.info(
            "daemon_started",
            version=__version__,
            http=f"{settings.http_host}:{settings.http_port}",
            metrics=f"{settings.metrics_host}:{settings.metrics_port}",
        )
        await _supervise_all(settings, watch, intake, duties, readiness)
    finally:
        with anyio.CancelScope(shield=True):
            for runner in runners:
                await runner.cleanup()
            if sources is not None:
                await sources.close()
            if runtime is not None:
                await runtime.close()
            with anyio.move_on_after(2):
                await pool.close()
    log.info("daemon_stopped")
