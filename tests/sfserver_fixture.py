"""Run the Salesforce-compatible test server (tests/sfserver/server.js) from Python tests.

`SalesforceServer` starts `node tests/sfserver/server.js` on a free loopback port (running
`npm ci` first if `tests/sfserver/node_modules` is missing), waits for its `listening` line,
wraps the control API (/_test/...) in async helpers, and can kill and restart the process on the
same port with the same state file to simulate "Salesforce restarted mid-stream".

The `salesforce_server` pytest fixture gives each test a fresh server with its own state file;
import it from a conftest (`from tests.sfserver_fixture import salesforce_server`).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import fcntl
import json
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import pytest_asyncio

SERVER_DIR = Path(__file__).parent / "sfserver"
SERVER_JS = SERVER_DIR / "server.js"

# Defaults built into the server (tests/sfserver/lib/state.js).
ORG_ID = "00Dxx0000000001AAA"
CLIENT_ID = "sfstripe-test-consumer-key"
CLIENT_SECRET = "sfstripe-test-consumer-secret"
INTEGRATION_USERNAME = "integration@sfstripe.test"
INTEGRATION_PASSWORD = "integration-password"
INTEGRATION_USER_ID = "005xx000001X9AbAAK"
ADMIN_USERNAME = "admin@sfstripe.test"
ADMIN_PASSWORD = "admin-password"
ADMIN_USER_ID = "005xx000001X8UzAAK"
API_VERSION = "64.0"

STARTUP_TIMEOUT = 20.0


class SalesforceServerError(RuntimeError):
    """The server could not start, or a control call failed."""


def ensure_node_modules() -> None:
    """`npm ci` once, under a file lock so parallel test processes don't race."""
    if (SERVER_DIR / "node_modules" / "faye").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SalesforceServerError("npm not found: Node.js 20+ is needed for tests/sfserver")
    with (SERVER_DIR / ".npm-ci.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (SERVER_DIR / "node_modules" / "faye").is_dir():
            return
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=SERVER_DIR,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SalesforceServerError(f"npm ci failed:\n{done.stdout}\n{done.stderr}")


class SalesforceServer:
    """One server process; `async with SalesforceServer(state_file) as sf: ...`."""

    def __init__(
        self,
        state_file: Path | str | None = None,
        *,
        poll_timeout: float = 110,
        jwt_keys: Iterable[Path | str] = (),
        config_file: Path | str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.state_file = Path(state_file) if state_file is not None else None
        self.poll_timeout = poll_timeout
        self.jwt_keys = [str(k) for k in jwt_keys]
        self.config_file = Path(config_file) if config_file is not None else None
        self.host = host
        self.port = port
        self.base_url = ""
        self.log: collections.deque[str] = collections.deque(maxlen=200)
        self._proc: asyncio.subprocess.Process | None = None
        self._drain: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None

    # ---- process lifecycle ---------------------------------------------------------------

    @property
    def instance_url(self) -> str:
        return self.base_url

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/services/oauth2/token"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(self) -> None:
        if self.running:
            raise SalesforceServerError("already running")
        node = shutil.which("node")
        if node is None:
            raise SalesforceServerError("node not found: Node.js 20+ is needed for tests/sfserver")
        await asyncio.to_thread(ensure_node_modules)
        # --stdin-lifeline: the server exits when our end of its stdin closes, even if this
        # process dies without cleaning up.
        args = [node, str(SERVER_JS), "--port", str(self.port), "--host", self.host]
        args.append("--stdin-lifeline")
        args += ["--poll-timeout", str(self.poll_timeout)]
        if self.state_file is not None:
            args += ["--state", str(self.state_file)]
        if self.config_file is not None:
            args += ["--config", str(self.config_file)]
        for key in self.jwt_keys:
            args += ["--jwt-key", key]
        # Restarting on the same port can briefly race the old socket; retry a few times.
        for attempt in range(20):
            try:
                await self._spawn(args)
                break
            except SalesforceServerError:
                if self.port == 0 or attempt == 19 or "EADDRINUSE" not in "\n".join(self.log):
                    raise
                await asyncio.sleep(0.1)
        if self._http is None:
            # No keep-alive: pooled connections would point at a killed process after restart().
            self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))

    async def _spawn(self, args: list[str]) -> None:
        self.log.clear()
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        assert proc.stdout is not None
        try:
            async with asyncio.timeout(STARTUP_TIMEOUT):
                while True:
                    raw = await proc.stdout.readline()
                    if not raw:
                        break
                    line = raw.decode(errors="replace").rstrip()
                    self.log.append(line)
                    if line.startswith("listening "):
                        self.base_url = line.split(" ", 1)[1]
                        self.port = int(self.base_url.rsplit(":", 1)[1])
                        self._proc = proc
                        self._drain = asyncio.create_task(self._drain_output(proc))
                        return
        except TimeoutError:
            pass
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        self._close_stdin(proc)
        raise SalesforceServerError("sfserver did not start:\n" + "\n".join(self.log))

    @staticmethod
    def _close_stdin(proc: asyncio.subprocess.Process) -> None:
        if proc.stdin is not None:
            proc.stdin.close()

    async def _drain_output(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while raw := await proc.stdout.readline():
            self.log.append(raw.decode(errors="replace").rstrip())

    async def _end_process(self, sig: signal.Signals) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.returncode is None:
            proc.send_signal(sig)
            try:
                async with asyncio.timeout(5):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        self._close_stdin(proc)
        if self._drain is not None:
            await self._drain
            self._drain = None

    async def kill(self) -> None:
        """SIGKILL: a crash. State already acknowledged to clients is on disk."""
        await self._end_process(signal.SIGKILL)

    async def restart(self, *, graceful: bool = False, delay: float = 0.0) -> None:
        """Kill (or SIGTERM) and start again on the same port with the same state file."""
        if self.port == 0:
            raise SalesforceServerError("not started")
        await self._end_process(signal.SIGTERM if graceful else signal.SIGKILL)
        if delay:
            await asyncio.sleep(delay)
        await self.start()

    async def stop(self) -> None:
        await self._end_process(signal.SIGTERM)
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def __aenter__(self) -> SalesforceServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ---- raw HTTP ------------------------------------------------------------------------

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            raise SalesforceServerError("not started")
        return self._http

    async def control(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """Call /_test/<path>; returns the decoded JSON, raises on a non-200 answer."""
        url = f"{self.base_url}/_test/{path.lstrip('/')}"
        async with self.http.request(
            method, url, json=dict(body) if body is not None else None
        ) as r:
            data = await r.json(content_type=None)
            if r.status != 200:
                raise SalesforceServerError(f"{method} /_test/{path}: {r.status} {data}")
            return data

    async def oauth_token(self, form: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        """POST the token endpoint; returns (status, JSON)."""
        async with self.http.post(self.token_url, data=dict(form)) as r:
            return r.status, await r.json(content_type=None)

    async def access_token(
        self, username: str = INTEGRATION_USERNAME, password: str = INTEGRATION_PASSWORD
    ) -> str:
        """Access token via the password flow of the default connected app."""
        status, body = await self.oauth_token(
            {
                "grant_type": "password",
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "username": username,
                "password": password,
            }
        )
        if status != 200:
            raise SalesforceServerError(f"token request failed: {status} {body}")
        return str(body["access_token"])

    async def rest(
        self,
        method: str,
        path: str,
        *,
        token: str,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        version: str = API_VERSION,
    ) -> tuple[int, Any, Mapping[str, str]]:
        """Call /services/data/v<version>/<path> (or an absolute /services/... path)."""
        url = path if path.startswith("/") else f"/services/data/v{version}/{path}"
        hdrs = {"Authorization": f"Bearer {token}", **(headers or {})}
        async with self.http.request(
            method, self.base_url + url, json=json_body, headers=hdrs
        ) as r:
            text = await r.text()
            return r.status, (json.loads(text) if text else None), r.headers

    # ---- control API helpers --------------------------------------------------------------

    async def reset(self) -> Any:
        return await self.control("POST", "reset")

    async def set_config(self, **config: Any) -> Any:
        return await self.control("POST", "config", config)

    async def add_user(self, username: str, password: str, **fields: Any) -> Any:
        return await self.control(
            "POST", "users", {"username": username, "password": password, **fields}
        )

    async def add_client(self, client_id: str, **fields: Any) -> Any:
        """Fields: clientSecret, publicKey (PEM key/certificate), runAs, rotateRefreshTokens."""
        return await self.control("POST", "clients", {"clientId": client_id, **fields})

    async def refresh_token(self, client_id: str | None = None, username: str | None = None) -> str:
        body = await self.control(
            "POST", "refresh_token", {"clientId": client_id, "username": username}
        )
        return str(body["refresh_token"])

    async def revoke_tokens(self, *, refresh_tokens: bool = False) -> int:
        body = await self.control("POST", "revoke_tokens", {"refreshTokens": refresh_tokens})
        return int(body["revoked"])

    async def publish(
        self,
        entity: str,
        change_type: str = "UPDATE",
        record_ids: Iterable[str] = (),
        fields: Mapping[str, Any] | None = None,
        changed_fields: Iterable[str] = (),
        **header: Any,
    ) -> dict[str, Any]:
        """Publish one CDC event; header extras: transactionKey, sequenceNumber, commitUser,
        changeOrigin, commitTimestamp, commitNumber. Returns {replayIds, schema, payload}."""
        body = {
            "entity": entity,
            "changeType": change_type,
            "recordIds": list(record_ids),
            "fields": dict(fields or {}),
            "changedFields": list(changed_fields),
            **header,
        }
        result: dict[str, Any] = await self.control("POST", "publish", body)
        return result

    async def publish_transaction(
        self, events: Iterable[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """Several events sharing one transactionKey, sequenceNumber 1..n (control API shape)."""
        result = await self.control("POST", "publish", {"events": [dict(e) for e in events]})
        return list(result["events"])

    async def published(self, entity: str | None = None) -> list[dict[str, Any]]:
        path = "published" + (f"?entity={entity}" if entity else "")
        return list(await self.control("GET", path))

    async def events(self, channel: str = "/data/ChangeEvents") -> dict[str, Any]:
        result: dict[str, Any] = await self.control("GET", f"events?channel={channel}")
        return result

    async def records(self, sobject: str, *, deleted: bool = False) -> list[dict[str, Any]]:
        path = f"records?type={sobject}" + ("&deleted=true" if deleted else "")
        return list(await self.control("GET", path))

    async def edit_record(
        self,
        sobject: str,
        fields: Mapping[str, Any] | None = None,
        *,
        record_id: str | None = None,
        delete: bool = False,
        emit: bool = True,
        change_origin: str | None = None,
        commit_user: str | None = None,
    ) -> dict[str, Any]:
        """A change made "in Salesforce" (default author: the admin user, changeOrigin "")."""
        body: dict[str, Any] = {"type": sobject, "fields": dict(fields or {}), "emit": emit}
        if record_id is not None:
            body["id"] = record_id
        if delete:
            body["delete"] = True
        if change_origin is not None:
            body["changeOrigin"] = change_origin
        if commit_user is not None:
            body["commitUser"] = commit_user
        result: dict[str, Any] = await self.control("POST", "records", body)
        return result

    async def drop_sessions(self) -> int:
        return int((await self.control("POST", "cometd/drop_sessions"))["dropped"])

    async def cometd_clients(self) -> list[dict[str, Any]]:
        return list(await self.control("GET", "cometd/clients"))

    async def expire_until(self, replay_id: int, channel: str | None = None) -> dict[str, int]:
        body: dict[str, Any] = {"replayId": replay_id}
        if channel is not None:
            body["channel"] = channel
        return dict((await self.control("POST", "cometd/expire", body))["floors"])

    async def reset_stream(self) -> Any:
        return await self.control("POST", "cometd/reset_stream")

    async def fail_next_subscribes(
        self, count: int = 1, *, mode: str = "silent", error: str | None = None
    ) -> Any:
        """mode "silent": answer successful but subscribe nothing; "error": fail with `error`."""
        body: dict[str, Any] = {"count": count, "mode": mode}
        if error is not None:
            body["error"] = error
        return await self.control("POST", "cometd/fail_subscribes", body)

    async def fail_cometd(
        self,
        on: Iterable[str],
        error: str,
        *,
        count: int = 1,
        advice: Mapping[str, Any] | None = None,
    ) -> Any:
        body: dict[str, Any] = {"on": list(on), "error": error, "count": count}
        if advice is not None:
            body["advice"] = dict(advice)
        return await self.control("POST", "cometd/fail", body)

    async def limit_exceeded(
        self, count: int = 1, on: Iterable[str] = ("connect", "subscribe")
    ) -> Any:
        return await self.control("POST", "cometd/limit_exceeded", {"count": count, "on": list(on)})

    async def too_busy(
        self, count: int = 1, on: Iterable[str] = ("handshake", "connect", "subscribe")
    ) -> Any:
        return await self.control("POST", "cometd/too_busy", {"count": count, "on": list(on)})

    async def fail_next_rest(
        self,
        kind: str | None = None,
        *,
        count: int = 1,
        method: str | None = None,
        path: str | None = None,
        per_record: bool = False,
        **spec: Any,
    ) -> Any:
        """kind: UNABLE_TO_LOCK_ROW | REQUEST_LIMIT_EXCEEDED | SERVER_UNAVAILABLE |
        FIELD_CUSTOM_VALIDATION_EXCEPTION, or pass status/errorCode/message/fields."""
        body: dict[str, Any] = {"count": count, "perRecord": per_record, **spec}
        if kind is not None:
            body["kind"] = kind
        if method is not None:
            body["method"] = method
        if path is not None:
            body["path"] = path
        return await self.control("POST", "rest/fail", body)


# ---- RS256 JWT helpers without Python crypto dependencies (Node does the maths) ------------

_JWT_TOOL = r"""
const crypto = require('node:crypto');
const req = JSON.parse(require('node:fs').readFileSync(0, 'utf8'));
if (req.op === 'keypair') {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  process.stdout.write(JSON.stringify({
    privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }),
    publicKey: publicKey.export({ type: 'spki', format: 'pem' }),
  }));
} else {
  const sig = crypto.sign('RSA-SHA256', Buffer.from(req.input), req.privateKey);
  process.stdout.write(JSON.stringify({ signature: sig.toString('base64url') }));
}
"""


def _node_tool(request: Mapping[str, Any]) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        raise SalesforceServerError("node not found")
    done = subprocess.run(
        [node, "-e", _JWT_TOOL],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def generate_rsa_keypair() -> tuple[str, str]:
    """(private key PEM, public key PEM), RSA 2048."""
    keys = _node_tool({"op": "keypair"})
    return str(keys["privateKey"]), str(keys["publicKey"])


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_jwt(private_key_pem: str, claims: Mapping[str, Any]) -> str:
    """Compact RS256 JWT, as a JWT bearer client would build it."""
    header = _b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    payload = _b64url(json.dumps(dict(claims)).encode())
    signing_input = f"{header}.{payload}"
    signature = _node_tool({"op": "sign", "input": signing_input, "privateKey": private_key_pem})
    return f"{signing_input}.{signature['signature']}"


@pytest_asyncio.fixture
async def salesforce_server(tmp_path: Path) -> AsyncIterator[SalesforceServer]:
    """A fresh server per test, persisting to tmp_path (so `restart()` keeps its state)."""
    async with SalesforceServer(tmp_path / "sfserver-state.json") as server:
        yield server


__all__ = [
    "ADMIN_USER_ID",
    "API_VERSION",
    "CLIENT_ID",
    "CLIENT_SECRET",
    "INTEGRATION_PASSWORD",
    "INTEGRATION_USERNAME",
    "INTEGRATION_USER_ID",
    "ORG_ID",
    "SalesforceServer",
    "SalesforceServerError",
    "generate_rsa_keypair",
    "salesforce_server",
    "sign_jwt",
]
