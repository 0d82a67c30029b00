"""A TCP proxy in front of the test PostgreSQL server, to simulate a database outage.

The proxy listens on 127.0.0.1:<free port> and forwards every connection to the server behind a
DSN: a unix socket (the DSN's `host` query parameter is a directory holding
`.s.PGSQL.<port>`) or a TCP host and port. `cut()` closes every open connection and stops
listening, so new connections are refused; `restore()` listens on the same port again.
`stall()` keeps every connection open but forwards nothing (a network black hole) until
`resume()`.

It runs its own event loop in a background thread, so a test (sync or async) can drive it while
the daemon under test runs in a subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

T = TypeVar("T")

DEFAULT_PORT = 5432
_CHUNK = 64 * 1024


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Upstream:
    """Where the proxy forwards to: a unix socket path or a TCP (host, port)."""

    def __init__(self, *, unix_path: str | None = None, host: str = "", port: int = 0) -> None:
        self.unix_path = unix_path
        self.host = host
        self.port = port

    @classmethod
    def from_dsn(cls, dsn: str) -> Upstream:
        parts = urlsplit(dsn)
        params = dict(parse_qsl(parts.query))
        host = params.get("host") or parts.hostname or "localhost"
        port = int(params.get("port") or parts.port or DEFAULT_PORT)
        if host.startswith("/"):
            return cls(unix_path=f"{host.rstrip('/')}/.s.PGSQL.{port}")
        return cls(host=host, port=port)

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.unix_path is not None:
            return await asyncio.open_unix_connection(self.unix_path)
        return await asyncio.open_connection(self.host, self.port)

    def __repr__(self) -> str:
        return f"Upstream({self.unix_path or f'{self.host}:{self.port}'})"


def proxied_dsn(dsn: str, port: int) -> str:
    """`dsn` (user, password, database, options) but through 127.0.0.1:`port`."""
    parts = urlsplit(dsn)
    params = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("host", "port")]
    userinfo = ""
    if parts.username:
        userinfo = parts.username
        if parts.password:
            userinfo += f":{parts.password}"
        userinfo += "@"
    elif "@" not in parts.netloc:
        userinfo = "postgres@"
    return urlunsplit(parts._replace(netloc=f"{userinfo}127.0.0.1:{port}", query=urlencode(params)))


class PgProxy:
    """Forwards 127.0.0.1:`port` to `upstream` until cut; see the module docstring."""

    def __init__(self, upstream: Upstream, port: int | None = None) -> None:
        self.upstream = upstream
        self.port = port or free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="pgproxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._clients: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.connections_accepted = 0

    @classmethod
    def for_dsn(cls, dsn: str) -> PgProxy:
        return cls(Upstream.from_dsn(dsn))

    def dsn(self, database_dsn: str) -> str:
        """The DSN that reaches `database_dsn`'s database through this proxy."""
        return proxied_dsn(database_dsn, self.port)

    # -- control, from any thread ------------------------------------------------------------

    def start(self) -> PgProxy:
        self._thread.start()
        try:
            self._call(self._listen())
        except BaseException:
            self.close()
            raise
        return self

    def cut(self) -> None:
        """Close every open connection and refuse new ones."""
        self._call(self._cut())

    def restore(self) -> None:
        """Accept and forward connections again, on the same port (ends a stall too)."""
        self._call(self._listen())
        self.resume()

    def stall(self) -> None:
        """Keep connections (and accept new ones) but forward no byte: a black hole."""
        self._loop.call_soon_threadsafe(self._flowing.clear)

    def resume(self) -> None:
        """Forward again after `stall()`; the held bytes go through."""
        self._loop.call_soon_threadsafe(self._flowing.set)

    def close(self) -> None:
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                self._call(self._cut())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        if not self._thread.is_alive() and not self._loop.is_closed():
            self._loop.close()

    @property
    def open_connections(self) -> int:
        return len(self._clients)

    def __enter__(self) -> PgProxy:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    # -- on the proxy's loop ---------------------------------------------------------------

    async def _listen(self) -> None:
        if self._server is not None:
            return
        # reuse_address: the port may still have sockets in TIME_WAIT from before the cut.
        for attempt in range(50):
            try:
                self._server = await asyncio.start_server(
                    self._handle, "127.0.0.1", self.port, reuse_address=True
                )
                return
            except OSError:
                if attempt == 49:
                    raise
                await asyncio.sleep(0.1)

    async def _cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        self._clients.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), timeout=5)

    async def _handle(
        self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        if self._server is None:  # accepted just before a cut
            client.transport.abort()
            return
        self.connections_accepted += 1
        self._tasks.add(task)
        self._writers.add(client)
        self._clients.add(client)
        upstream: asyncio.StreamWriter | None = None
        try:
            await self._flowing.wait()
            try:
                upstream_reader, upstream = await self.upstream.connect()
            except OSError:
                return
            self._writers.add(upstream)
            await asyncio.gather(
                self._pump(client_reader, upstream, self._flowing),
                self._pump(upstream_reader, client, self._flowing),
            )
        except asyncio.CancelledError:
            pass
        finally:
            for writer in (client, upstream):
                if writer is not None:
                    self._writers.discard(writer)
                    writer.transport.abort()
            self._clients.discard(client)
            self._tasks.discard(task)

    @staticmethod
    async def _pump(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, flowing: asyncio.Event
    ) -> None:
        try:
            while data := await reader.read(_CHUNK):
                await flowing.wait()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            # One side is gone: take the other down too, as a dead server would.
            writer.transport.abort()
