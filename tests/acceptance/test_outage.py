"""A database outage makes the daemon unready (not dead); it recovers when the database returns."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterator

import asyncpg
import pytest

from tests.acceptance.support import Daemon, Response, base_environment, eventually
from tests.pgproxy import PgProxy, Upstream, proxied_dsn

OUTAGE_NOTICED_WITHIN = 8.0
RECOVERED_WITHIN = 8.0


@pytest.fixture
def proxy(fresh_dsn: str) -> Iterator[PgProxy]:
    with PgProxy.for_dsn(fresh_dsn) as running:
        yield running


def readyz(daemon: Daemon) -> Callable[[], Response | None]:
    return lambda: daemon.get("/readyz")


def status_is(daemon: Daemon, path: str, status: int) -> Callable[[], Response | None]:
    def check() -> Response | None:
        response = daemon.get(path)
        return response if response is not None and response.status == status else None

    return check


def database_up_is(daemon: Daemon, value: str) -> Callable[[], bool]:
    return lambda: f"\nsfstripe_database_up {value}\n" in daemon.metrics()


def test_proxy_forwards_and_cuts(proxy: PgProxy, fresh_dsn: str) -> None:
    async def head() -> int:
        conn = await asyncpg.connect(proxy.dsn(fresh_dsn), timeout=5)
        try:
            value: int = await conn.fetchval("SELECT last_offset FROM log_head")
            return value
        finally:
            await conn.close()

    assert asyncio.run(head()) == 0
    proxy.cut()
    with pytest.raises((OSError, asyncpg.InterfaceError)):
        asyncio.run(head())
    proxy.restore()
    assert asyncio.run(head()) == 0


def test_proxy_reaches_a_tcp_server(proxy: PgProxy, fresh_dsn: str) -> None:
    """The test server may be TCP (SFSTRIPE_TEST_DATABASE_URL): chain a proxy to check that."""
    with PgProxy(Upstream(host="127.0.0.1", port=proxy.port)) as outer:

        async def one() -> int:
            conn = await asyncpg.connect(outer.dsn(fresh_dsn), timeout=5)
            try:
                value: int = await conn.fetchval("SELECT 1")
                return value
            finally:
                await conn.close()

        assert asyncio.run(one()) == 1


@pytest.mark.parametrize(
    ("dsn", "upstream", "through"),
    [
        (
            "postgresql://postgres:@/db1?host=/tmp/pg0",
            "/tmp/pg0/.s.PGSQL.5432",
            "postgresql://postgres@127.0.0.1:7000/db1",
        ),
        (
            "postgresql://postgres@/db1?host=/tmp/pg0&port=5433&sslmode=disable",
            "/tmp/pg0/.s.PGSQL.5433",
            "postgresql://postgres@127.0.0.1:7000/db1?sslmode=disable",
        ),
        (
            "postgresql://u:pw@db.example:6432/db2",
            "db.example:6432",
            "postgresql://u:pw@127.0.0.1:7000/db2",
        ),
        ("postgresql:///db3", "localhost:5432", "postgresql://postgres@127.0.0.1:7000/db3"),
    ],
    ids=["unix", "unix-port-options", "tcp-password", "no-host"],
)
def test_proxy_dsn_parsing(dsn: str, upstream: str, through: str) -> None:
    parsed = Upstream.from_dsn(dsn)
    assert (parsed.unix_path or f"{parsed.host}:{parsed.port}") == upstream
    assert proxied_dsn(dsn, 7000) == through


def test_outage_turns_readiness_off_and_back_on(
    proxy: PgProxy, fresh_dsn: str, daemons: Callable[..., Daemon]
) -> None:
    daemon = daemons(base_environment(SFSTRIPE_DATABASE_URL=proxy.dsn(fresh_dsn)))
    daemon.wait_ready()
    eventually(database_up_is(daemon, "1.0"), timeout=5, what="sfstripe_database_up 1")
    assert proxy.open_connections >= 1

    proxy.cut()
    unready = eventually(
        status_is(daemon, "/readyz", 503), timeout=OUTAGE_NOTICED_WITHIN, what="/readyz 503"
    )
    assert "database" in unready.body, unready
    healthz = daemon.get("/healthz")
    assert healthz is not None and healthz.status == 200, healthz
    eventually(database_up_is(daemon, "0.0"), timeout=5, what="sfstripe_database_up 0")
    assert "\nsfstripe_ready 0.0\n" in daemon.metrics()
    assert daemon.logged("database_unavailable"), daemon.describe()
    # It stays unready (and alive) while the database is away.
    for _ in range(5):
        response = daemon.get("/readyz")
        assert response is not None and response.status == 503, response
        healthz = daemon.get("/healthz")
        assert healthz is not None and healthz.status == 200, healthz
        assert daemon.process is not None and daemon.process.poll() is None

    proxy.restore()
    ready = eventually(
        status_is(daemon, "/readyz", 200), timeout=RECOVERED_WITHIN, what="/readyz 200 again"
    )
    assert ready.json()["status"] == "ready"
    eventually(database_up_is(daemon, "1.0"), timeout=5, what="sfstripe_database_up 1 again")
    assert daemon.logged("database_available"), daemon.describe()

    assert daemon.stop(signal.SIGTERM) == 0, daemon.describe()
    assert daemon.logged("daemon_stopped")


def test_shutdown_during_an_outage(
    proxy: PgProxy, fresh_dsn: str, daemons: Callable[..., Daemon]
) -> None:
    daemon = daemons(base_environment(SFSTRIPE_DATABASE_URL=proxy.dsn(fresh_dsn)))
    daemon.wait_ready()
    proxy.cut()
    eventually(status_is(daemon, "/readyz", 503), timeout=OUTAGE_NOTICED_WITHIN, what="503")

    assert daemon.stop(signal.SIGTERM) == 0, daemon.describe()
    assert daemon.logged("daemon_stopped"), daemon.describe()


def test_repeated_outages(proxy: PgProxy, fresh_dsn: str, daemons: Callable[..., Daemon]) -> None:
    daemon = daemons(base_environment(SFSTRIPE_DATABASE_URL=proxy.dsn(fresh_dsn)))
    daemon.wait_ready()
    for _ in range(3):
        proxy.cut()
        eventually(status_is(daemon, "/readyz", 503), timeout=OUTAGE_NOTICED_WITHIN, what="503")
        proxy.restore()
        eventually(status_is(daemon, "/readyz", 200), timeout=RECOVERED_WITHIN, what="200")
    assert daemon.stop() == 0, daemon.describe()


def test_a_database_that_stops_answering_turns_readiness_off(
    proxy: PgProxy, fresh_dsn: str, daemons: Callable[..., Daemon]
) -> None:
    """No connection is closed: the database just stops answering (a network black hole)."""
    daemon = daemons(base_environment(SFSTRIPE_DATABASE_URL=proxy.dsn(fresh_dsn)))
    daemon.wait_ready()

    proxy.stall()
    unready = eventually(
        status_is(daemon, "/readyz", 503), timeout=OUTAGE_NOTICED_WITHIN, what="/readyz 503"
    )
    assert "database" in unready.body, unready
    healthz = daemon.get("/healthz")
    assert healthz is not None and healthz.status == 200, healthz

    proxy.resume()
    eventually(status_is(daemon, "/readyz", 200), timeout=RECOVERED_WITHIN, what="/readyz 200")
    assert daemon.stop() == 0, daemon.describe()


def test_shutdown_while_the_database_stops_answering(
    proxy: PgProxy, fresh_dsn: str, daemons: Callable[..., Daemon]
) -> None:
    daemon = daemons(base_environment(SFSTRIPE_DATABASE_URL=proxy.dsn(fresh_dsn)))
    daemon.wait_ready()
    proxy.stall()
    eventually(status_is(daemon, "/readyz", 503), timeout=OUTAGE_NOTICED_WITHIN, what="503")

    assert daemon.stop(signal.SIGTERM) == 0, daemon.describe()
    assert daemon.logged("daemon_stopped"), daemon.describe()
