"""The `sfstripe` command: run the daemon, migrate, look into the log, repair it (dead letters,
replays).

Exit codes: 0 ok, 2 configuration error (one line per problem), 1 runtime failure.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import anyio
import asyncpg
import click
import msgspec

from handlers.api import registered
from handlers.registry import RegistryError
from handlers.replay import ReplayError
from sfstripe import operations
from sfstripe.config import ConfigError, Settings, load_from_environment
from sfstripe.customer_sync import MixedModes
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
    except (MigrationError, RegistryError, ReplayError, MixedModes) as exc:
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
def demo(ctx: click.Context) -> None:
    """Run the daemon against the built-in Stripe Billing emulator, with a sample customer."""
    from sfstripe.demo import run_demo

    settings = _settings(ctx)
    _run(lambda: run_demo(settings))


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
            runtime = await operations.runtime_report(pool, head)
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
            **runtime,
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
    _echo_runtime(report)


def _echo_runtime(report: dict[str, Any]) -> None:
    leadership = report["leadership"]
    leader = leadership["leader"]
    click.echo(
        "leader: "
        + (
            f"{leader['instance']} ({leader['role']}, since {leader['since']})"
            if leader
            else "none"
        )
        + (f"; standbys: {', '.join(leadership['standbys'])}" if leadership["standbys"] else "")
    )
    click.echo("handlers:" + ("" if report["handlers"] else " none has run yet"))
    for h in report["handlers"]:
        click.echo(
            f"  {h['name']}: lag {h['lag_events']} events (low-water offset"
            f" {h['low_water_offset']}), {h['parked_customers']} parked,"
            f" {h['retrying_customers']} retrying, {h['dead_letters']} dead letters in all"
        )
    for p in report["parked"]:
        click.echo(
            f"  parked: {p['handler']} {p['customer']} at seq {p['seq']}"
            f" (dead letter {p['dead_letter_id']}, since {p['since']})"
        )


async def _with_pool(settings: Settings, work: Callable[[asyncpg.Pool], Awaitable[T]]) -> T:
    pool = await open_pool(await database_dsn(settings), min_size=1, max_size=2)
    try:
        return await work(pool)
    finally:
        await pool.close()


@cli.group()
def dlq() -> None:
    """Dead letters: events a handler gave up on; their customer's lane waits (parked)."""


@dlq.command(name="list")
@click.option("--all", "everything", is_flag=True, help="Also retried and skipped ones.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def dlq_list(ctx: click.Context, everything: bool, as_json: bool) -> None:
    """List dead letters (parked ones unless --all), oldest first."""
    from state.dead_letters import DeadLetters

    settings = _settings(ctx)
    listed = _run(
        lambda: _with_pool(
            settings, lambda pool: DeadLetters(pool).listed(None if everything else "parked")
        )
    )
    for dead in listed:
        if as_json:
            click.echo(json.dumps(operations.dead_letter_json(dead)))
        else:
            click.echo(
                f"{dead.id:>6} {dead.status:<8} {dead.handler} {dead.customer} #{dead.seq}"
                f" offset {dead.offset} {dead.source_event_id} attempts {dead.attempts}"
                f" at {dead.created_at.isoformat()}: {dead.reason}"
            )
    if not listed and not as_json:
        click.echo("no dead letters" if everything else "no parked dead letters")


@dlq.command(name="retry")
@click.argument("dead_letter_id", type=int, required=False)
@click.option("--customer", help="Every parked lane of this customer.")
@click.pass_context
def dlq_retry(ctx: click.Context, dead_letter_id: int | None, customer: str | None) -> None:
    """Unpark: the lane runs again from the dead letter (a running leader is told at once)."""
    if (dead_letter_id is None) == (customer is None):
        raise click.UsageError("give either a dead letter ID or --customer")
    settings = _settings(ctx)
    retried = _run(
        lambda: _with_pool(settings, lambda pool: operations.retry(pool, dead_letter_id, customer))
    )
    if not retried:
        raise Failure(
            f"no parked dead letter {dead_letter_id}"
            if dead_letter_id is not None
            else f"no parked dead letter of customer {customer}"
        )
    for dead in retried:
        click.echo(f"retrying dead letter {dead.id}: {dead.handler} {dead.customer} #{dead.seq}")


@dlq.command(name="skip")
@click.argument("dead_letter_id", type=int)
@click.option("--reason", required=True, help="Why it is skipped (recorded in the log).")
@click.pass_context
def dlq_skip(ctx: click.Context, dead_letter_id: int, reason: str) -> None:
    """Go on past a dead letter without applying it; recorded as a marker event."""
    settings = _settings(ctx)
    skipped = _run(
        lambda: _with_pool(settings, lambda pool: operations.skip(pool, dead_letter_id, reason))
    )
    if skipped is None:
        raise Failure(f"no parked dead letter {dead_letter_id}")
    click.echo(
        f"skipped dead letter {skipped.id}: {skipped.handler} {skipped.customer}"
        f" goes on after #{skipped.seq}"
    )


def _replay_request(
    *,
    from_offset: int | None,
    to_offset: int | None,
    customer: str | None,
    handler: str | None,
    dry_run: bool,
    source: str | None,
    channel: str | None,
    replay_id: int | None,
    after_event: str | None,
    yes: bool,
) -> tuple[str, dict[str, Any]]:
    """The kind and parameters of the replay asked for; UsageError for a wrong combination."""
    if (from_offset is None) == (source is None):
        raise click.UsageError("give either --from-offset (the log) or --source (upstream)")
    if from_offset is not None:
        if channel or replay_id is not None or after_event or yes:
            raise click.UsageError("--channel, --replay-id, --after-event go with --source")
        if to_offset is not None and to_offset < from_offset:
            raise click.UsageError("--to-offset is below --from-offset")
        params = {
            "from_offset": from_offset,
            "to_offset": to_offset,
            "customer": customer,
            "handler": handler,
            "dry_run": dry_run,
        }
        return "log", params
    if to_offset is not None or customer or handler or dry_run:
        raise click.UsageError(
            "--to-offset, --customer, --handler, --dry-run go with --from-offset"
        )
    if source == "salesforce" and (not channel or replay_id is None or after_event):
        raise click.UsageError("--source salesforce needs --channel and --replay-id")
    if source == "stripe" and (not after_event or channel or replay_id is not None):
        raise click.UsageError("--source stripe needs --after-event evt_...")
    if not yes:
        raise click.UsageError(
            "moving an upstream position makes the source deliver again everything after it"
            " (what is logged already is a no-op): pass --yes"
        )
    return "position", {
        "source": source,
        "channel": channel,
        "replay_id": replay_id,
        "after_event": after_event,
    }


@cli.group(invoke_without_command=True)
@click.option("--from-offset", type=click.IntRange(min=1), help="Replay the log from here.")
@click.option("--to-offset", type=click.IntRange(min=1), help="... to here (default: the head).")
@click.option("--customer", help="Only this customer's stream.")
@click.option("--handler", help="Only this handler.")
@click.option("--dry-run", is_flag=True, help="Dispatch without external writes (shadow mode).")
@click.option("--source", type=click.Choice(["salesforce", "stripe"]), help="Move upstream.")
@click.option("--channel", help="The Salesforce CDC channel (with --source salesforce).")
@click.option("--replay-id", type=int, help="Re-subscribe after this replay id.")
@click.option("--after-event", help="Poll Stripe again after this event id (evt_...).")
@click.option("--yes", is_flag=True, help="Confirm moving an upstream position.")
@click.pass_context
def replay(
    ctx: click.Context,
    *,
    from_offset: int | None,
    to_offset: int | None,
    customer: str | None,
    handler: str | None,
    dry_run: bool,
    source: str | None,
    channel: str | None,
    replay_id: int | None,
    after_event: str | None,
    yes: bool,
) -> None:
    """Re-apply handlers to logged events, or move a source's upstream position.

    Progress goes to stderr (a bar on a terminal); the last line on stdout is a JSON summary.
    Exit code 1 when a lane failed (see `failed_lanes`). Ctrl-C cancels the replay (it stops
    between handler calls; the summary says `"cancelled": true`, exit code 1); a second Ctrl-C
    stops waiting for that.
    """
    if ctx.invoked_subcommand is not None:
        given = [from_offset, to_offset, customer, handler, source, channel, replay_id, after_event]
        if any(v is not None for v in given) or dry_run or yes:
            raise click.UsageError(f"`replay {ctx.invoked_subcommand}` takes no replay options")
        return
    kind, request = _replay_request(
        from_offset=from_offset,
        to_offset=to_offset,
        customer=customer,
        handler=handler,
        dry_run=dry_run,
        source=source,
        channel=channel,
        replay_id=replay_id,
        after_event=after_event,
        yes=yes,
    )
    settings = _settings(ctx)
    result = _run(lambda: _replay(settings, kind, request))
    click.echo(json.dumps(result))
    if result.get("cancelled"):
        from sfstripe.replays import cancelled_line

        click.echo(cancelled_line(result), err=True)
        sys.exit(1)
    if result.get("failed_lanes"):
        sys.exit(1)


@replay.command(name="cancel")
@click.argument("request_id", type=int)
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=30,
    show_default=True,
    help="Seconds to wait for a running replay to stop.",
)
@click.pass_context
def replay_cancel(ctx: click.Context, request_id: int, wait: float) -> None:
    """Cancel a replay request the leader runs (the requesting CLI logs its id as
    `replay_requested`): a pending one at once, a running one at its next safe point. Prints
    the request's summary; exit code 1 when it had already ended or does not stop in time."""
    from sfstripe.replays import cancel_request, cancelled_line

    settings = _settings(ctx)
    asked, request = _run(
        lambda: _with_pool(settings, lambda pool: cancel_request(pool, request_id, wait_s=wait))
    )
    if request is None:
        raise Failure(f"no replay request {request_id}")
    if not asked:
        raise Failure(f"replay request {request_id} had already ended: {request.status}")
    if request.status != "cancelled":
        raise Failure(
            f"replay request {request_id} asked to stop; still {request.status} after {wait:g} s"
        )
    click.echo(json.dumps(request.result or {}))
    click.echo(cancelled_line(request.result or {}, request_id), err=True)


async def _replay(settings: Settings, kind: str, request: dict[str, Any]) -> dict[str, Any]:
    from handlers.registry import registered_handlers
    from handlers.replay import select_handlers
    from sfstripe.customer_sync import check_modes, sync_handlers
    from sfstripe.handler_runtime import HandlerRuntime
    from sfstripe.progress import ProgressDisplay
    from sfstripe.replays import (
        CliReplay,
        ReplayAbandoned,
        ReplayFailed,
        salesforce_position,
        stripe_position,
    )
    from state.replay_requests import stripe_event_created

    dsn = await database_dsn(settings)
    pool = await open_pool(dsn, min_size=1, max_size=6)
    try:
        handlers = registered_handlers(builtins=sync_handlers(settings, pool))
        if kind == "log":
            select_handlers(handlers, request["handler"])  # an unknown name fails before anything
    except BaseException:
        await pool.close()
        raise
    runtime = HandlerRuntime(settings, handlers)
    try:
        if kind == "log" and not request["dry_run"] and settings.customer_sync_enabled:
            # A replay writes to Stripe and Salesforce as the daemon does: the same pairing check.
            runtime.own_salesforce(pool)
            assert runtime.clients.salesforce is not None
            await check_modes(settings, runtime.clients.salesforce)
        params = request
        if kind == "position" and request["source"] == "stripe":
            created = await stripe_event_created(pool, request["after_event"])
            params = stripe_position(request["after_event"], created)
        elif kind == "position":
            params = salesforce_position(request["channel"], request["replay_id"])
        display = ProgressDisplay("replay") if kind == "log" else None
        runner = CliReplay(dsn, pool, runtime, display, interruptible=True)
        try:
            return await runner.run(kind, params)  # type: ignore[arg-type]
        except ReplayFailed as exc:
            raise Failure(f"replay failed: {exc}") from exc
        except ReplayAbandoned as exc:
            raise Failure(str(exc)) from exc
    finally:
        await runtime.close()
        await pool.close()


@cli.group(name="mapping")
def mapping_group() -> None:
    """The field mapping of the customer sync."""


@mapping_group.command(name="check")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False), required=False)
def mapping_check(path: Path | None) -> None:
    """Validate a mapping file (default: SFSTRIPE_MAPPING_FILE, else the built-in one)."""
    from handlers.customers.mapping import MappingError, load

    named = path or (Path(os.environ["SFSTRIPE_MAPPING_FILE"]) if _mapping_env() else None)
    try:
        found = load(named)
    except MappingError as exc:
        for problem in exc.problems:
            click.echo(f"mapping error: {problem}", err=True)
        sys.exit(2)
    for rule in found.fields:
        click.echo(f"{rule.source:<40} -> {rule.stripe:<22} owner {rule.owner}")
    click.echo(f"{found.origin}: {len(found.fields)} fields, ok")


def _mapping_env() -> bool:
    return bool(os.environ.get("SFSTRIPE_MAPPING_FILE", "").strip())


@cli.command()
@click.option(
    "--object", "sobject", type=click.Choice(["Account"]), required=True, help="What to backfill."
)
@click.option("--where", "where", multiple=True, help="FIELD=VALUE (repeatable): only these.")
@click.option(
    "--create-matched",
    is_flag=True,
    help="Also accounts that an unlinked Stripe customer matches by email (held back otherwise).",
)
@click.pass_context
def backfill(
    ctx: click.Context, sobject: str, where: tuple[str, ...], create_matched: bool
) -> None:
    """Append a snapshot of each existing Account, so the running daemon syncs it."""
    from sfstripe.backfill import where_conditions

    try:
        conditions = where_conditions(where)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    settings = _settings(ctx)
    if not settings.customer_sync_enabled:
        raise Failure("backfill needs the customer sync: Salesforce and Stripe both on")
    click.echo(json.dumps(_run(lambda: _backfill(settings, conditions, create_matched))))


async def _backfill(
    settings: Settings, where: dict[str, Any], create_matched: bool
) -> dict[str, Any]:
    from handlers.clients import StripeApi
    from handlers.customers.mapping import load
    from sfstripe.backfill import backfill as run_backfill
    from sfstripe.backfill import log as backfill_log
    from sfstripe.customer_sync import sync_handlers
    from sfstripe.handler_runtime import HandlerRuntime

    dsn = await database_dsn(settings)
    await migrate_database(dsn)
    pool = await open_pool(dsn, min_size=1, max_size=4)
    runtime = HandlerRuntime(settings, [registered(h) for h in sync_handlers(settings, pool)])
    try:
        runtime.own_salesforce(pool)
        salesforce, client = runtime.clients.salesforce, runtime.clients.stripe_client
        assert salesforce is not None and client is not None  # both sides are on
        stripe = StripeApi(client, writes_enabled=True, log=backfill_log)
        mapping = load(settings.mapping_file)
        return await run_backfill(
            mapping, EventLog(pool), salesforce, stripe, where, create_matched=create_matched
        )
    finally:
        await runtime.close()
        await pool.close()


def main() -> None:
    cli(prog_name="sfstripe")
