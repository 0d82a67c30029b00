"""`sfstripe run`: wires the components, supervises them, and shuts down in order.

Shutdown on SIGTERM/SIGINT: readiness turns false, the sources stop taking new input, the log
writer commits what it already holds (within `shutdown_grace`), and only then is the rest
cancelled. Positions are committed with their events, so whatever was acknowledged is durable.
"""

from __future__ import annotations

import signal

import anyio
import structlog
from aiohttp import web

from metrics.exposition import metrics_app
from metrics.instruments import BUILD_INFO, DATABASE_UP, LOG_HEAD
from sfstripe import __version__
from sfstripe.config import Settings, disabled_source_hints
from sfstripe.database import database_dsn, migrate_database
from sfstripe.health import Readiness, add_health_routes
from sfstripe.supervisor import supervise
from state.database import open_pool
from state.log import EventLog
from state.watch import DatabaseWatch
from stream.intake import LogIntake

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


async def run_daemon(settings: Settings) -> None:
    BUILD_INFO.info({"version": __version__})
    dsn = await database_dsn(settings)
    await migrate_database(dsn)
    for source, hint in disabled_source_hints(settings).items():
        log.info("source_off", source=source, turn_on=hint)
    pool = await open_pool(dsn)
    runners: list[web.AppRunner] = []
    try:
        watch = DatabaseWatch(pool)
        event_log = EventLog(pool)
        intake = LogIntake(event_log, watch)
        readiness = Readiness(watch)
        LOG_HEAD.set((await event_log.summary())[0])

        http = web.Application()
        add_health_routes(http, readiness)
        runners.append(await _serve(http, settings.http_host, settings.http_port))
        runners.append(await _serve(metrics_app(), settings.metrics_host, settings.metrics_port))
        log.info(
            "daemon_started",
            version=__version__,
            http=f"{settings.http_host}:{settings.http_port}",
            metrics=f"{settings.metrics_host}:{settings.metrics_port}",
        )

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
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for received in signals:
                    log.info("shutdown_requested", signal=signal.Signals(received).name)
                    break
            readiness.shutting_down = True
            intake.close()
            with anyio.move_on_after(settings.shutdown_grace) as grace:
                await writer_done.wait()
            if grace.cancelled_caught:
                log.warning("shutdown_grace_exceeded", grace_s=settings.shutdown_grace)
            daemon.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            for runner in runners:
                await runner.cleanup()
            with anyio.move_on_after(2):
                await pool.close()
    log.info("daemon_stopped")
