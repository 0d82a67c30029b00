"""Stripe webhook intake against `@supabase/stripe-sync-engine`, in one run, on one PostgreSQL.

Both receivers get the same signed Stripe events over `concurrency` keep-alive connections and
answer 2xx only once the event is stored: sfstripe (the real daemon, `sfstripe run`) after its
group commit, the peer (its `processWebhook` behind a bare Node http server, `bench/peer`)
after its upserts. The load generator sends pre-built request bytes and reads only the status
line and Content-Length, so that its own CPU does not decide the result on a 2-core machine.
Rounds alternate between the two so that the machine's drift falls on both alike; afterwards
each side's database must hold every acknowledged event.

Only 2xx answers count. A 503 from sfstripe means "retry later": such events are left out of
the rate and resent after the clock (as Stripe would redeliver them); whatever still fails is
reported as lost. The last line printed is the JSON result.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import stripe

from bench.database import database_server, scratch_database
from bench.payloads import StripeWebhook, stripe_webhooks

PATH = "/webhooks/stripe"
HOST = "127.0.0.1"
PEER_SOURCE = Path(__file__).resolve().parent / "peer"
PEER_FILES = ("package.json", "package-lock.json", "server.js")
REPOSITORY = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0
NPM_TIMEOUT_S = 300.0
RESEND_ATTEMPTS = 3

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class BenchError(Exception):
    """The run cannot go on (a server did not start, a check failed); the message says why."""


@dataclass
class _Shot:
    """What one burst of requests got back."""

    acked: list[int] = field(default_factory=list)
    refused: list[tuple[int, int, bytes]] = field(default_factory=list)  # index, status, body
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    database_cpu: float = 0.0


@dataclass
class _Side:
    """One receiver and its tally over all rounds."""

    name: str
    port: int
    database: str
    pid: int | None = None
    metrics_port: int | None = None
    acked: list[int] = field(default_factory=list)
    acked_in_time: int = 0
    seconds: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    database_cpu: float = 0.0
    latencies: list[float] = field(default_factory=list)
    refused: Counter[int] = field(default_factory=Counter)
    refusal_samples: dict[int, bytes] = field(default_factory=dict)
    lost: list[int] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Events acknowledged while the clock ran, per timed second (resends excluded)."""
        return self.acked_in_time / self.seconds if self.seconds else 0.0

    def take(self, shot: _Shot) -> list[int]:
        """Add a timed burst; return the refused indexes (to be resent after the clock)."""
        self.acked += shot.acked
        self.acked_in_time += len(shot.acked)
        self.seconds += shot.seconds
        self.server_cpu += shot.server_cpu
        self.client_cpu += shot.client_cpu
        self.database_cpu += shot.database_cpu
        self.latencies += shot.latencies
        for _, status, body in shot.refused:
            self.refused[status] += 1
            self.refusal_samples.setdefault(status, body[:200])
        return [index for index, _, _ in shot.refused]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _shown(dsn: str) -> str:
    """The DSN without its password, for progress lines."""
    parts = urlsplit(dsn)
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of process `pid`, all threads (Linux /proc; 0 elsewhere)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _backends_cpu(admin: asyncpg.Connection, database: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving `database` (same machine only)."""
    rows = await admin.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", database)
    return {row["pid"]: _cpu_seconds(row["pid"]) for row in rows}


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- processes -----------------------------------------------------------------------------


async def _stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM (the daemon drains its writer), then SIGKILL if it takes too long."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
    except asyncio.CancelledError:
        # A second Ctrl-C while stopping: leave no orphan behind.
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        raise


@contextlib.asynccontextmanager
async def _process(
    argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, log: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """A child in its own session (a Ctrl-C reaches only us, and we stop it in order)."""
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            *argv,
            env=dict(env),
            cwd=cwd,
            stdin=asyncio.subprocess.PIPE,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        await _stop(process)


async def _status(port: int, path: str) -> int | None:
    """The status of `GET path`, or None when nothing answers."""
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
    except OSError:
        return None
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        line = await reader.readline()
        return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    finally:
        writer.close()


async def _commit_metrics(port: int | None) -> tuple[float, float, float]:
    """sfstripe's group commits so far, from its /metrics: (commits, seconds in them, events
    stored by them)."""
    if port is None:
        return 0.0, 0.0, 0.0
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(f"GET /metrics HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        text = (await reader.read()).decode(errors="replace")
    finally:
        writer.close()
    values = dict(line.rsplit(" ", 1) for line in text.splitlines() if line.startswith("sfstripe_"))
    return (
        float(values.get("sfstripe_append_batch_seconds_count", 0)),
        float(values.get("sfstripe_append_batch_seconds_sum", 0)),
        sum(
            float(value)
            for name, value in values.items()
            if name.startswith('sfstripe_events_appended_total{source="stripe"')
        ),
    )


async def _wait_ready(name: str, process: asyncio.subprocess.Process, port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while await _status(port, "/readyz") != 200:
        if process.returncode is not None:
            raise BenchError(f"{name} exited with {process.returncode}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            raise BenchError(f"{name} not ready within {START_TIMEOUT_S:.0f}s:\n{_tail(log)}")
        await asyncio.sleep(0.2)


def _daemon_env(
    dsn: str, secret: str, port: int, metrics_port: int, data_dir: Path
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SFSTRIPE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPOSITORY), env.get("PYTHONPATH")]))
    env.update(
        SFSTRIPE_DATABASE_URL=dsn,
        SFSTRIPE_DATA_DIR=str(data_dir),
        SFSTRIPE_STRIPE="on",
        SFSTRIPE_STRIPE_API_KEY="sk_test_bench",
        SFSTRIPE_STRIPE_MODE="webhook",
        SFSTRIPE_STRIPE_WEBHOOK_SECRETS=secret,
        SFSTRIPE_HTTP_PORT=str(port),
        SFSTRIPE_METRICS_PORT=str(metrics_port),
        SFSTRIPE_LOG_LEVEL="WARNING",
    )
    return env


def _stage_peer(cache: Path) -> str | None:
    """Copy the peer's files into `cache`; return the stamp to record after an install, or
    None when node_modules is already installed from these package files."""
    cache.mkdir(parents=True, exist_ok=True)
    for name in PEER_FILES:
        shutil.copyfile(PEER_SOURCE / name, cache / name)
    stamp = hashlib.sha256(
        b"".join((PEER_SOURCE / name).read_bytes() for name in PEER_FILES[:2])
    ).hexdigest()
    stamp_file = cache / ".installed"
    installed = stamp_file.is_file() and stamp_file.read_text() == stamp
    return None if installed and (cache / "node_modules").is_dir() else stamp


async def _install_peer(cache: Path) -> str | None:
    """Install the peer into `cache` (only when its package files changed); None when it is
    ready, else why it is not. node_modules never lives in the repository."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if not npm or not node:
        return "node or npm is not on PATH"
    stamp = _stage_peer(cache)
    if stamp is None:
        return None
    print(f"installing the peer into {cache} (npm ci)", flush=True)
    process = await asyncio.create_subprocess_exec(
        npm,
        "ci",
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
        cwd=cache,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), NPM_TIMEOUT_S)
    except TimeoutError:
        return f"npm ci took longer than {NPM_TIMEOUT_S:.0f}s"
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode:
        return f"npm ci failed ({process.returncode}): {output.decode(errors='replace')[-500:]}"
    (cache / ".installed").write_text(stamp)
    return None


# --- load ----------------------------------------------------------------------------------


def _signed(
    events: Sequence[StripeWebhook], indexes: Iterable[int], secret: str, port: int
) -> dict[int, bytes]:
    """Complete HTTP/1.1 requests, signed now (Stripe's tolerance is five minutes)."""
    now = int(time.time())
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        "User-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
    ).encode()
    requests = {}
    for index in indexes:
        body = events[index].body
        raw = body.encode()
        header: str = stripe.WebhookSignature.generate_signature_header(body, secret, now)
        tail = f"Stripe-Signature: {header}\r\nContent-Length: {len(raw)}\r\n\r\n".encode()
        requests[index] = head + tail + raw
    return requests


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Status, body, and whether the server closes the connection."""
    head = (await reader.readuntil(b"\r\n\r\n")).lower()
    at = head.find(b"\r\ncontent-length:")
    if at < 0:
        raise BenchError(f"an answer without Content-Length: {head[:200]!r}")
    start = at + 17
    length = int(head[start : head.index(b"\r\n", start)])
    body = await reader.readexactly(length) if length else b""
    return int(head[9:12]), body, b"\r\nconnection: close" in head


async def _fire(
    port: int,
    requests: Mapping[int, bytes],
    indexes: Sequence[int],
    concurrency: int,
    server_pid: int | None = None,
) -> _Shot:
    """Send each request once over `concurrency` persistent connections, one in flight each.

    The connections are opened before the clock starts; it stops at the last answer. The CPU
    both processes used meanwhile shows whether the load generator could have decided it.
    """
    shot = _Shot()
    pending = iter(indexes)
    opened: list[asyncio.StreamWriter] = []

    async def connect() -> Streams:
        reader, writer = await asyncio.open_connection(HOST, port)
        opened.append(writer)
        return reader, writer

    async def worker(streams: Streams) -> None:
        reader, writer = streams
        clock = time.perf_counter
        for index in pending:
            sent = clock()
            try:
                writer.write(requests[index])
                status, body, closing = await _response(reader)
            except (OSError, asyncio.IncompleteReadError) as exc:
                shot.refused.append((index, 0, repr(exc).encode()))
                reader, writer = await connect()
                continue
            shot.latencies.append(clock() - sent)
            if 200 <= status < 300:
                shot.acked.append(index)
            else:
                shot.refused.append((index, status, body))
            if closing:
                reader, writer = await connect()

    try:
        connections = [await connect() for _ in range(min(concurrency, len(indexes)))]
        server_cpu, client_cpu = _cpu_seconds(server_pid), time.process_time()
        started = time.perf_counter()
        await asyncio.gather(*(worker(streams) for streams in connections))
        shot.seconds = time.perf_counter() - started
        shot.server_cpu = _cpu_seconds(server_pid) - server_cpu
        shot.client_cpu = time.process_time() - client_cpu
    finally:
        for writer in opened:
            writer.close()
    return shot


async def _resend(
    side: _Side,
    events: Sequence[StripeWebhook],
    refused: list[int],
    secret: str,
    concurrency: int,
) -> None:
    """Untimed: send refused events again (a 503 means "retry later", as Stripe would);
    whatever is still refused after the last attempt is lost and reported."""
    for attempt in range(RESEND_ATTEMPTS):
        if not refused:
            return
        if attempt:
            await asyncio.sleep(1.0)
        shot = await _fire(
            side.port, _signed(events, refused, secret, side.port), refused, concurrency
        )
        side.acked += shot.acked
        refused = [index for index, _, _ in shot.refused]
    side.lost += refused


# --- durability ----------------------------------------------------------------------------


async def _verify_sfstripe(dsn: str, events: Sequence[StripeWebhook], acked: Sequence[int]) -> str:
    """Every acknowledged event must be in the log. Events answered 503 may be there too
    (the answer came before their commit); Stripe's redelivery would then be a duplicate."""
    conn = await asyncpg.connect(dsn)
    try:
        total = await conn.fetchval("SELECT count(*) FROM events WHERE source = 'stripe'")
        stored = {
            row["source_event_id"]
            for row in await conn.fetch(
                "SELECT source_event_id FROM events WHERE source = 'stripe'"
            )
        }
        gappy = await conn.fetchval(
            "SELECT count(*) FROM (SELECT customer FROM events GROUP BY customer"
            " HAVING max(seq) <> count(*)) AS g"
        )
        # ingested_at is now(), the transaction's start: one value per group commit.
        commits = await conn.fetchval(
            "SELECT count(DISTINCT ingested_at) FROM events WHERE source = 'stripe'"
        )
    finally:
        await conn.close()
    timed = stored & {event.event_id for event in events}
    acked_ids = {events[i].event_id for i in acked}
    missing = acked_ids - stored
    if missing or gappy:
        raise BenchError(
            f"sfstripe durability: {len(missing)} of {len(acked_ids)} acknowledged events are"
            f" not in the log (e.g. {sorted(missing)[:3]}); {gappy} streams with seq gaps"
        )
    unacked = len(timed - acked_ids)
    return (
        f"sfstripe: {total} stripe events stored - {total - len(timed)} warm-up = {len(timed)};"
        f" all {len(acked_ids)} acknowledged event ids present"
        + (f", and {unacked} refused ones stored anyway" if unacked else "")
        + "; seq gapless in every stream; written in"
        f" {commits} transactions ({total / max(commits, 1):.1f} events per group commit)"
    )


async def _verify_peer(dsn: str, events: Sequence[StripeWebhook], acked: Sequence[int]) -> str:
    """The peer stores objects, not events: each object an acknowledged event touched must
    hold at least that event's version (its `last_synced_at` is the event's `created`)."""
    expected: dict[tuple[str, str], int] = {}
    for index in acked:
        event = events[index]
        for key in event.rows:
            expected[key] = max(expected.get(key, 0), event.created)
    tables = sorted({table for table, _ in expected})
    conn = await asyncpg.connect(dsn)
    try:
        found: dict[tuple[str, str], int] = {}
        for table in tables:
            for row in await conn.fetch(
                f'SELECT id, extract(epoch FROM last_synced_at)::bigint AS at FROM stripe."{table}"'
            ):
                found[(table, row["id"])] = row["at"]
        logged_events = await conn.fetchval("SELECT count(*) FROM stripe.events")
    finally:
        await conn.close()
    missing = [key for key in expected if key not in found]
    stale = [key for key, at in expected.items() if key in found and found[key] < at]
    if missing or stale:
        raise BenchError(
            f"peer durability: {len(missing)} objects missing (e.g. {missing[:3]}),"
            f" {len(stale)} older than their last acknowledged event (e.g. {stale[:3]})"
        )
    per_table = Counter(table for table, _ in expected)
    shown = ", ".join(f"{table} {count}" for table, count in sorted(per_table.items()))
    return (
        f"peer: all {len(expected)} objects the {len(acked)} acknowledged events imply are"
        f" stored at their newest acknowledged version ({shown}); stripe.events holds"
        f" {logged_events} rows (the peer keeps objects, not events)"
    )


# --- the run -------------------------------------------------------------------------------


def _describe(side: _Side) -> str:
    latencies = sorted(side.latencies) or [0.0]
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    refused = ", ".join(f"{status or 'connection lost'}: {n}" for status, n in side.refused.items())
    resent = len(side.acked) - side.acked_in_time
    return (
        f"{side.name}: {side.acked_in_time} events acknowledged in {side.seconds:.2f}s timed ="
        f" {side.rate:,.0f} events/s (latency p50 {p50:.1f} ms, p99 {p99:.1f} ms; CPU: server"
        f" {side.server_cpu:.1f}s, its PostgreSQL backends {side.database_cpu:.1f}s,"
        f" load generator {side.client_cpu:.1f}s); non-2xx during the clock:"
        f" {refused or 'none'}; acknowledged when resent (not counted): {resent};"
        f" lost: {len(side.lost)}"
    )


async def _warm_up(sides: Sequence[_Side], count: int, concurrency: int, secret: str) -> None:
    """Not timed: a few hundred events on other objects (namespace W), so both run hot."""
    if count <= 0:
        return
    events = stripe_webhooks(
        count, max(1, count // 10), namespace="W", created_from=int(time.time()) - 86_400
    )
    for side in sides:
        requests = _signed(events, range(count), secret, side.port)
        shot = await _fire(side.port, requests, range(count), concurrency)
        print(f"warm-up {side.name}: {len(shot.acked)}/{count} acknowledged", flush=True)


async def _start_sfstripe(
    stack: contextlib.AsyncExitStack, server: str, secret: str, workdir: Path
) -> tuple[_Side, str]:
    """`sfstripe run` on a fresh database, ready; stopped when `stack` closes."""
    dsn = await stack.enter_async_context(scratch_database(server))
    side = _Side("sfstripe", _free_port(), urlsplit(dsn).path.lstrip("/"))
    side.metrics_port = _free_port()
    log = workdir / "daemon.log"
    daemon = await stack.enter_async_context(
        _process(
            [sys.executable, "-m", "sfstripe", "run"],
            env=_daemon_env(dsn, secret, side.port, side.metrics_port, workdir / "data"),
            cwd=workdir,
            log=log,
        )
    )
    await _wait_ready("sfstripe run", daemon, side.port, log)
    side.pid = daemon.pid
    print(f"sfstripe run ready on :{side.port}", flush=True)
    return side, dsn


async def _start_peer(
    stack: contextlib.AsyncExitStack, server: str, secret: str, workdir: Path, peer_dir: Path
) -> tuple[_Side, str] | None:
    """The peer on a fresh database (it migrates it itself), ready; None if it fails."""
    dsn = await stack.enter_async_context(scratch_database(server, migrated=False))
    side = _Side("peer", _free_port(), urlsplit(dsn).path.lstrip("/"))
    log = workdir / "peer.log"
    env = {**os.environ, "DATABASE_URL": dsn, "WEBHOOK_SECRET": secret, "PORT": str(side.port)}
    process = await stack.enter_async_context(
        _process(["node", "server.js"], env=env, cwd=peer_dir, log=log)
    )
    try:
        await _wait_ready("peer", process, side.port, log)
    except BenchError as exc:
        print(f"peer unavailable: {exc}", flush=True)
        return None
    side.pid = process.pid
    print(f"peer (stripe-sync-engine) ready on :{side.port}", flush=True)
    return side, dsn


async def _timed(
    sides: Sequence[_Side],
    events: Sequence[StripeWebhook],
    *,
    rounds: int,
    concurrency: int,
    secret: str,
    admin: asyncpg.Connection,
) -> None:
    """The measured rounds (ABBA order), then the untimed resending of refused events."""
    per_round = -(-len(events) // rounds)
    refused: dict[str, list[int]] = {side.name: [] for side in sides}
    for r in range(rounds):
        chunk = range(r * per_round, min((r + 1) * per_round, len(events)))
        for side in sides if r % 2 == 0 else sides[::-1]:
            requests = _signed(events, chunk, secret, side.port)
            before = await _backends_cpu(admin, side.database)
            commits = await _commit_metrics(side.metrics_port)
            shot = await _fire(side.port, requests, chunk, concurrency, side.pid)
            after = await _backends_cpu(admin, side.database)
            shot.database_cpu = sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())
            count, seconds, stored = (
                b - a
                for a, b in zip(commits, await _commit_metrics(side.metrics_port), strict=True)
            )
            refused[side.name] += side.take(shot)
            grouped = (
                f"; {count:.0f} group commits of {stored / count:.1f} events,"
                f" {seconds / count * 1000:.1f} ms each"
                if count
                else ""
            )
            print(
                f"round {r + 1}/{rounds} {side.name}: {len(shot.acked)}/{len(chunk)}"
                f" acknowledged in {shot.seconds:.2f}s ({len(shot.acked) / shot.seconds:,.0f}/s;"
                f" CPU: server {shot.server_cpu:.1f}s, its PostgreSQL backends"
                f" {shot.database_cpu:.1f}s, load generator {shot.client_cpu:.1f}s{grouped})",
                flush=True,
            )
    for side in sides:
        if refused[side.name]:
            print(f"resending {len(refused[side.name])} refused to {side.name}", flush=True)
            await _resend(side, events, refused[side.name], secret, concurrency)
        print(_describe(side), flush=True)
        for status, body in side.refusal_samples.items():
            print(f"  {side.name} {status or 'error'} e.g.: {body.decode(errors='replace')}")


async def _run(args: argparse.Namespace) -> dict[str, float | None]:
    secret = f"whsec_{secrets.token_hex(16)}"
    server = await database_server(args.database_url)
    print(f"PostgreSQL: {_shown(server)}", flush=True)
    peer_problem = "--no-peer given" if args.no_peer else await _install_peer(args.peer_dir)
    if peer_problem:
        print(f"peer unavailable: {peer_problem}", flush=True)
    events = stripe_webhooks(
        args.events,
        args.customers,
        namespace="B",
        created_from=int(time.time()) - 2 * 86_400 - args.events,
    )
    sizes = [len(e.body) for e in events]
    print(
        f"{len(events)} events over {args.customers} customers, {min(sizes)}-{max(sizes)}"
        " bytes: "
        + ", ".join(f"{t} {n}" for t, n in Counter(e.type for e in events).most_common()),
        flush=True,
    )
    async with contextlib.AsyncExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sfstripe-bench-")))
        ours, sf_dsn = await _start_sfstripe(stack, server, secret, workdir)
        peer = None
        if peer_problem is None:
            peer = await _start_peer(stack, server, secret, workdir, args.peer_dir)
        sides = [ours] if peer is None else [ours, peer[0]]
        await _warm_up(sides, args.warmup, args.concurrency, secret)
        admin = await asyncpg.connect(server)
        try:
            await _timed(
                sides,
                events,
                rounds=args.rounds,
                concurrency=args.concurrency,
                secret=secret,
                admin=admin,
            )
        finally:
            await admin.close()
        print(await _verify_sfstripe(sf_dsn, events, ours.acked), flush=True)
        if peer is not None:
            print(await _verify_peer(peer[1], events, peer[0].acked), flush=True)

    rate = round(ours.rate)
    peer_rate = round(peer[0].rate) if peer is not None else None
    return {
        "events_per_s": rate,
        "peer_events_per_s": peer_rate,
        "ratio": round(rate / peer_rate, 3) if peer_rate else None,
    }


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sfstripe-bench" / "peer"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench webhooks",
        description="Stripe webhooks into sfstripe vs @supabase/stripe-sync-engine.",
    )
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--customers", type=int, default=1_000)
    parser.add_argument("--warmup", type=int, default=300, help="untimed events per side")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per side")
    parser.add_argument(
        "--database-url",
        help="PostgreSQL server for both sides (default: SFSTRIPE_TEST_DATABASE_URL,"
        " SFSTRIPE_DATABASE_URL, else the embedded server)",
    )
    parser.add_argument("--peer-dir", type=Path, default=_cache_dir(), help="peer install cache")
    parser.add_argument("--no-peer", action="store_true", help="measure sfstripe only")
    parser.add_argument("--time-limit", type=float, default=1200.0, help="seconds, whole run")
    args = parser.parse_args(argv)
    if args.events < 1 or args.concurrency < 1 or args.rounds < 1 or args.customers < 1:
        parser.error("--events, --concurrency, --rounds and --customers must be positive")

    async def bounded() -> dict[str, float | None]:
        # SIGTERM ends the run as Ctrl-C does (asyncio.run cancels on SIGINT): the `finally`s
        # stop both servers and drop the scratch databases on the way out.
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        async with asyncio.timeout(args.time_limit):
            return await _run(args)

    try:
        result = asyncio.run(bounded())
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except TimeoutError:
        print(f"error: the run took longer than --time-limit {args.time_limit:.0f}s")
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; servers stopped, scratch databases dropped", file=sys.stderr)
        return 130
    print(json.dumps(result))
    return 0
