"""The `sfstripe` command: run the daemon, migrate, and look into the log.

Exit codes: 0 ok, 2 configuration error (one line per problem), 1 runtime failure.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import anyio
import asyncpg
import click
import msgspec

from sfstripe.config import ConfigError, Settings, load_from_environment
from sfstripe.database import database_dsn, migrate_database
from sfstripe.logs import configure_logging
from state.database import open_pool
from state.log import EventLog
from state.migrate import MigrationError
from state.records import LoggedEvent

T = TypeVar("T")


class Failure(click.ClickException):
    """A runtime failure: its message is printed and the exit code is 1."""

    exit_code = 1


def _settings(ctx: click.Context) -> Settings:
    config_file: Path | None = ctx.obj
    try:
        settings = load_from_environment(config_file)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(f"configuration error: {problem}", err=True)
        sys.exit(2)
    configure_logging(settings.log_format, settings.log_level)
    return settings


def _run(main: Callable[[], Awaitable[T]]) -> T:
    try:
        return anyio.run(main)
    except MigrationError as exc:
        raise Failure(str(exc)) from exc
    except asyncpg.UndefinedTableError as exc:
        raise Failure("the database has no sfstripe schema yet: run `sfstripe migrate`") from exc
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise Failure(f"database: {exc}") from exc


@click.group()
@click.option(
    "--config",
    type=click.Path(path_type=Path, dir_okay=False),
    help="TOML file of settings (environment variables win over it).",
)
@click.version_option(package_name="sfstripe")
@click.pass_context
def cli(ctx: click.Context, config: Path | None) -> None:
    """sfstripe keeps Salesforce and Stripe Billing in agreement."""
    ctx.obj = config


@cli.command()
@click.pass_context
def run(ctx: click.Context) -> None:
    """Run the daemon until SIGTERM or SIGINT."""
    from sfstripe.daemon import run_daemon

    settings = _settings(ctx)
    _run(lambda: run_daemon(settings))


@cli.command()
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Apply pending database migrations (safe to run from two processes at once)."""
    settings = _settings(ctx)

    async def main() -> list[str]:
        return await migrate_database(await database_dsn(settings))

    applied = _run(main)
    click.echo(
        f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else "")
    )


def _event_json(event: LoggedEvent) -> dict[str, Any]:
    return {
        "offset": event.offset,
        "customer": event.customer,
        "seq": event.seq,
        "source": event.source,
        "source_event_id": event.source_event_id,
        "type": event.type,
        "object": (
            {"type": event.object_type, "id": event.object_id} if event.object_type else None
        ),
        "occurred_at": event.occurred_at.isoformat(),
    }


@cli.command(name="log")
@click.option("--customer", help="Only this customer's stream (an Account Id, catalog, ...).")
@click.option("--from-offset", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def log_command(
    ctx: click.Context, customer: str | None, from_offset: int, limit: int, as_json: bool
) -> None:
    """Show logged events from an offset, in log order."""
    settings = _settings(ctx)

    async def main() -> list[LoggedEvent]:
        pool = await open_pool(await database_dsn(settings), min_size=1, max_size=1)
        try:
            event_log = EventLog(pool)
            if customer is None:
                return await event_log.read(from_offset - 1, limit)
            return await event_log.read_customer_after_offset(customer, from_offset - 1, limit)
        finally:
            await pool.close()

    for event in _run(main):
        if as_json:
            click.echo(json.dumps(_event_json(event)))
        else:
            obj = f"{event.object_type}/{event.object_id}" if event.object_type else "-"
            click.echo(
                f"{event.offset:>10} {event.customer} #{event.seq} {event.source}"
                f" {event.type} {obj} {event.occurred_at.isoformat()} {event.source_event_id}"
            )


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show the log head, source positions and handler lag."""
    settings = _settings(ctx)

    async def main() -> dict[str, Any]:
        pool = await open_pool(await database_dsn(settings), min_size=1, max_size=1)
        try:
            event_log = EventLog(pool)
            head, last_ingested = await event_log.summary()
            positions = await event_log.positions()
        finally:
            await pool.close()
        return {
            "database": "configured"
            if settings.database_url
            else f"embedded in {settings.data_dir}",
            "log": {"head_offset": head, "last_ingested_at": _iso(last_ingested)},
            "positions": [
                {**msgspec.structs.asdict(p), "updated_at": _iso(at)} for p, at in positions
            ],
            "handlers": [],
        }

    report = _run(main)
    if as_json:
        click.echo(json.dumps(report))
        return
    click.echo(f"database: {report['database']}")
    click.echo(
        f"log head: offset {report['log']['head_offset']}"
        f" (last event committed {report['log']['last_ingested_at'] or 'never'})"
    )
    click.echo("source positions:" + ("" if report["positions"] else " none yet"))
    for p in report["positions"]:
        click.echo(f"  {p['source']} {p['channel']}: {p['position']} (at {p['updated_at']})")
    click.echo("handlers: none registered")


def main() -> None:
    cli(prog_name="sfstripe")
