"""Every work-around sfstripe needs for aiosfstream-ng 0.7.5 / aiocometd-ng 0.5.6 on Python 3.11.

Kept in one place, each with a test that shows the defect (tests/unit/test_aiosfstream_fixes.py):

1. `_wait_connection_timeout` passes `loop=` to `asyncio.wait_for` (removed in 3.10): every
   outage raised TypeError, which the client reported as a lost connection at once.
   `StreamingClient` overrides it without `loop=`.
2. A failed re-authentication wedges the client for good: the source never reuses a client after
   an error; it closes it, backs off and builds a new one (see `cdc_source.py`).
3. After a re-handshake the transport re-subscribes on its own and a failed re-subscribe is
   silent (the channel just stops delivering). `SubscriptionWatch` sees every `/meta/subscribe`
   answer and reports failures, and the source rebuilds the client.
4. The default replay policy stores the replay id on receipt, before processing.
   `DurableReplay` never stores anything: the source commits replay ids with the log append
   and feeds the committed ids back in.
5. A replay id of 0 is never sent (`if replay_id:`). `DurableReplay` sends any stored id.
6. The client must be created inside the running event loop (it captures the loop in its
   constructor): the source builds each client inside its own task.
7. The CometD URL hardcodes API 45.0: `StreamingClient` uses the configured version.
8. Closing a client makes its transport call `result()` on the connect task it just cancelled,
   so asyncio logs a CancelledError traceback at ERROR level on every close: noise that hides
   real errors. `quiet_cancelled_connects` filters exactly that record.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from aiocometd_ng.constants import MetaChannel, TransportState
from aiocometd_ng.extensions import Extension
from aiocometd_ng.typing import Headers, JsonObject, Payload
from aiosfstream_ng.auth import AuthenticatorBase
from aiosfstream_ng.client import Client, ReplayMarkerStoragePolicy
from aiosfstream_ng.replay import ReplayMarker, ReplayMarkerStorage


class _CancelledConnectFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        cancelled = isinstance(error, asyncio.CancelledError)
        return not (cancelled and "_connect_done" in record.getMessage())


_QUIET = _CancelledConnectFilter()


def quiet_cancelled_connects() -> None:
    """Fix 8 (idempotent): drop asyncio's report of the transport's cancelled connect task."""
    asyncio_log = logging.getLogger("asyncio")
    if _QUIET not in asyncio_log.filters:
        asyncio_log.addFilter(_QUIET)


class DurableReplay(ReplayMarkerStorage):
    """Replay ids come from what sfstripe committed; receiving a message stores nothing."""

    def __init__(self, committed: dict[str, int]) -> None:
        super().__init__()
        self.committed = committed

    async def insert_replay_id(self, message: JsonObject) -> None:
        subscription = message["subscription"]
        replay_id = self.committed.get(subscription)
        if replay_id is not None:  # fix 5: 0 is a valid replay id
            message.setdefault("ext", {})["replay"] = {subscription: replay_id}

    async def get_replay_marker(self, subscription: str) -> ReplayMarker | None:
        replay_id = self.committed.get(subscription)
        return None if replay_id is None else ReplayMarker("", replay_id)

    async def set_replay_marker(self, subscription: str, replay_marker: ReplayMarker) -> None:
        """Fix 4: nothing is stored on receipt; commits happen with the log append."""


def server_error_text(message: JsonObject) -> str:
    """Salesforce puts the real cause of a denied handshake in `ext.sfdc.failureReason`."""
    ext = message.get("ext") or {}
    reason = ext.get("sfdc", {}).get("failureReason") if isinstance(ext, dict) else None
    return str(reason or message.get("error") or "")


class SubscriptionWatch(Extension):
    """Fix 3: reports every failed `/meta/subscribe`, including automatic re-subscribes.

    It also hands every other failed `/meta/*` answer to `on_error`, so that the errors the
    transport retries on its own (503, limits, dropped sessions) are still logged and counted.
    """

    def __init__(self, on_error: Callable[[str, str], None] | None = None) -> None:
        self.failures: list[tuple[str, str]] = []
        self.failed = anyio.Event()
        self._on_error = on_error

    async def outgoing(self, payload: Payload, headers: Headers) -> None:
        return None

    async def incoming(self, payload: Payload, headers: Headers | None = None) -> None:
        for message in payload:
            channel = str(message.get("channel", ""))
            if not channel.startswith("/meta/") or message.get("successful", True):
                continue
            error = server_error_text(message)
            if self._on_error is not None:
                self._on_error(channel, error)
            if channel == MetaChannel.SUBSCRIBE:
                self.failures.append((str(message.get("subscription")), error))
                self.failed.set()


class TokenAuthenticator(AuthenticatorBase):
    """Hands the client tokens from a shared source (the one the REST client uses too)."""

    def __init__(self, fetch: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        super().__init__()
        self._fetch = fetch

    async def _authenticate(self) -> tuple[int, JsonObject]:
        try:
            return 200, await self._fetch()
        except Exception as exc:  # reported to the client as a refused login
            return 401, {"error": "authentication_failed", "error_description": str(exc)}


class StreamingClient(Client):
    """aiosfstream-ng's client with fixes 1, 4 and 7 applied."""

    def __init__(
        self,
        authenticator: AuthenticatorBase,
        replay: DurableReplay,
        watch: SubscriptionWatch,
        *,
        api_version: str,
        connection_timeout: float,
        max_pending_count: int,
    ) -> None:
        super().__init__(
            authenticator,
            replay=replay,
            replay_storage_policy=ReplayMarkerStoragePolicy.MANUAL,
            connection_timeout=connection_timeout,
            max_pending_count=max_pending_count,
        )
        assert self.extensions is not None
        self.extensions.append(watch)
        self._api_version = api_version

    def get_cometd_url(self, instance_url: str) -> str:  # type: ignore[override]
        return f"{instance_url.rstrip('/')}/cometd/{self._api_version}"

    async def _wait_connection_timeout(self, timeout: float) -> None:  # noqa: ASYNC109
        """Fix 1: the library's version passes `loop=` to `asyncio.wait_for`."""
        transport = self._transport
        assert transport is not None
        while True:
            await transport.wait_for_state(TransportState.CONNECTING)
            try:
                await asyncio.wait_for(transport.wait_for_state(TransportState.CONNECTED), timeout)
            except TimeoutError:
                return
