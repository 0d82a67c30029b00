"""localstripe (a fake Stripe API that sends signed webhooks) as a subprocess for tests.

localstripe signs each delivery with `t=<event.created>` and the secret registered through
`POST /_config/webhooks/<name>`, about one second after the event; it does not retry failed
deliveries. It lists events oldest first and has no `ending_before`: not a stand-in for
the /v1/events poller. It pickles its store to the fixed path /tmp/localstripe.pickle on
every write; `--from-scratch` keeps it from loading that file at start.

Use the fixture by importing it into a test module:
`from tests.localstripe_fixture import localstripe_fixture  # noqa: F401`
and naming `localstripe` as a test argument.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import stripe

EXECUTABLE = Path(sys.executable).with_name("localstripe")
API_KEY = "sk_test_sfstripe_localstripe_4eC39HqLyjWDarjtT1zdp7dc"
START_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class LocalStripe:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        """What localstripe printed: its access log and one line per webhook delivery."""
        return self.log_path.read_text(errors="replace")

    async def configure_webhook(
        self, name: str, url: str, secret: str, events: list[str] | None = None
    ) -> None:
        """Register (or replace) webhook `name`: every event is POSTed to `url`, signed."""
        form: list[tuple[str, str]] = [("url", url), ("secret", secret)]
        form += [("events[]", event) for event in events or []]
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
            http.post(f"{self.url}/_config/webhooks/{name}", data=form) as response,
        ):
            assert response.status == 200, await response.text()

    def client(self) -> tuple[stripe.StripeClient, stripe.AIOHTTPClient]:
        """The real SDK against localstripe; `await http.close_async()` when done."""
        http = stripe.AIOHTTPClient()
        client = stripe.StripeClient(
            API_KEY, base_addresses={"api": self.url}, http_client=http, max_network_retries=0
        )
        return client, http


def _answers(url: str) -> bool:
    request = urllib.request.Request(
        f"{url}/v1/customers", headers={"Authorization": f"Bearer {API_KEY}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _start(scratch: Path) -> LocalStripe | None:
    """One attempt on a fresh port; None when that port was taken meanwhile."""
    port = free_port()
    log_path = scratch / f"localstripe-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(EXECUTABLE), "--port", str(port), "--from-scratch"],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=scratch,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            if "Address already in use" in log_path.read_text(errors="replace"):
                return None
            raise RuntimeError(f"localstripe exited at start:\n{log_path.read_text()}")
        if _answers(url):
            return LocalStripe(url, process, log_path)
        time.sleep(0.1)
    _stop(process)
    raise RuntimeError(f"localstripe did not answer within {START_TIMEOUT_S} s:\n{log_path}")


@contextlib.contextmanager
def running_localstripe(scratch: Path) -> Iterator[LocalStripe]:
    """A fresh localstripe on a free port, stopped on the way out."""
    if not EXECUTABLE.exists():
        pytest.skip(f"localstripe is not installed next to {sys.executable}")
    instance = None
    for _ in range(3):
        instance = _start(scratch)
        if instance is not None:
            break
    if instance is None:
        raise RuntimeError("localstripe found no free port in 3 attempts")
    try:
        yield instance
    finally:
        _stop(instance.process)


@pytest.fixture(name="localstripe")
def localstripe_fixture(tmp_path: Path) -> Iterator[LocalStripe]:
    with running_localstripe(tmp_path) as instance:
        yield instance
