"""Running the `sfstripe` CLI as a subprocess, and talking to a running daemon over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from state.sql import migrations
from tests.pgproxy import free_port

COMMAND = (sys.executable, "-m", "sfstripe")
# Every migration of this checkout, in order, as `sfstripe migrate` reports them.
MIGRATIONS = [name for _, name, _ in migrations()]
MIGRATED = f"applied {len(MIGRATIONS)} migration(s): {', '.join(MIGRATIONS)}"
REPOSITORY = Path(__file__).resolve().parents[2]
CLI_TIMEOUT = 60.0
START_TIMEOUT = 60.0


def base_environment(**settings: str) -> dict[str, str]:
    """This process's environment without any `SFSTRIPE_*` variable, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SFSTRIPE_")}
    env["PYTHONUNBUFFERED"] = "1"
    # The subprocesses run in scratch folders: make this checkout importable even when the
    # project is not installed into the interpreter's environment.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPOSITORY), env.get("PYTHONPATH")]))
    env.update(settings)
    return env


def run_cli(
    *args: str, env: Mapping[str, str], cwd: Path, timeout: float = CLI_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run `sfstripe <args>` to completion (killed after `timeout`)."""
    return subprocess.run(
        [*COMMAND, *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_cli(*args: str, env: Mapping[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*COMMAND, *args],
        env=dict(env),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@dataclass
class Response:
    status: int
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


def http_get(url: str, timeout: float = 3.0) -> Response | None:
    """GET `url`; None when nothing answers (refused, reset, timed out)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return Response(response.status, response.read().decode())
    except urllib.error.HTTPError as error:
        with error:
            return Response(error.code, error.read().decode())
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return None


def eventually(
    check: Callable[[], Any], *, timeout: float, interval: float = 0.1, what: str = "condition"
) -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not reached within {timeout}s (last: {last!r})")
        time.sleep(interval)


class Daemon:
    """One `sfstripe run` subprocess; its stderr goes to a file so it can never block."""

    def __init__(
        self, env: Mapping[str, str], cwd: Path, log_dir: Path, command: str = "run"
    ) -> None:
        self.command = command
        # A port fixed in `env` is kept (a webhook endpoint may already point at it).
        self.http_port = int(env.get("SFSTRIPE_HTTP_PORT") or free_port())
        self.metrics_port = int(env.get("SFSTRIPE_METRICS_PORT") or free_port())
        self.env = {
            "SFSTRIPE_HTTP_PORT": str(self.http_port),
            "SFSTRIPE_METRICS_PORT": str(self.metrics_port),
            "SFSTRIPE_LOG_FORMAT": "json",
            **env,
        }
        self.grace = float(self.env.setdefault("SFSTRIPE_SHUTDOWN_GRACE", "3"))
        self.cwd = cwd
        log_dir.mkdir(parents=True, exist_ok=True)
        self.stderr_path = log_dir / f"daemon-{self.http_port}.stderr"
        self.stdout_path = log_dir / f"daemon-{self.http_port}.stdout"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Daemon:
        with self.stderr_path.open("wb") as err, self.stdout_path.open("wb") as out:
            self.process = subprocess.Popen(
                [*COMMAND, self.command],
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.http_port}{path}"

    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def get(self, path: str) -> Response | None:
        return http_get(self.url(path))

    def metrics(self) -> str:
        response = http_get(self.metrics_url())
        assert response is not None, "the metrics endpoint does not answer"
        assert response.status == 200, response
        return response.body

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def log_events(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (lines that are not JSON are skipped)."""
        events = []
        for line in self.stderr().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                events.append(record)
        return events

    def logged(self, event: str) -> list[dict[str, Any]]:
        return [record for record in self.log_events() if record.get("event") == event]

    def describe(self) -> str:
        code = self.process.poll() if self.process else None
        return f"sfstripe run (exit code {code}); stderr:\n{self.stderr()}"

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until /readyz answers 200 and the daemon has logged `daemon_started`."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"the daemon exited before it was ready: {self.describe()}")
            ready = self.get("/readyz")
            if ready is not None and ready.status == 200 and self.logged("daemon_started"):
                return
            if time.monotonic() >= deadline:
                raise AssertionError(f"not ready within {timeout}s: {self.describe()}")
            time.sleep(0.1)

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float | None = None) -> int:
        """Send `sig` and return the exit code; fails if it takes longer than grace + 5 s."""
        assert self.process is not None
        allowed = timeout if timeout is not None else self.grace + 5
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=allowed)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"still running {allowed}s after {sig.name}: {self.describe()}"
            ) from None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def postmaster_pid(data_dir: Path) -> int | None:
    """The pid of the PostgreSQL server running in `data_dir`, if one is running."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:  # a stale file may name a pid that is now another process: check it is this server
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    if not cmdline or not cmdline[0].endswith(b"postgres"):
        return None
    if str(data_dir.resolve()).encode() not in cmdline:
        return None
    return pid


def stop_postmaster(data_dir: Path) -> None:
    """Stop a PostgreSQL server a test left running in `data_dir` (fast shutdown, by pid)."""
    pid = postmaster_pid(data_dir)
    if pid is None:
        return
    os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + 10
    while postmaster_pid(data_dir) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    pid = postmaster_pid(data_dir)
    if pid is not None:
        os.kill(pid, signal.SIGKILL)
