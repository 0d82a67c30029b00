"""The Change Data Capture source: CometD in, the log out, replay ids committed with the events.

Each session builds a new client (a client that failed once is never reused, see
`aiosfstream_fixes`), subscribes every channel from its committed replay id, and runs two tasks
joined by a bounded buffer: one pulls messages from the client, the other turns whatever is
waiting into one batch and submits it to the intake together with each channel's last replay
id. When the log falls behind, the buffer fills, the puller stops pulling, the client's own
queue fills and it stops connecting: backpressure reaches Salesforce instead of memory. A
redelivered message is a duplicate by `source_event_id` and costs no row.

Failures end the session; the source logs them, counts them, backs off exponentially with
jitter and starts a new session from the committed replay ids. An invalid (expired) replay id
leaves a gap marker in the log and resubscribes according to `on_invalid_replay`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

import anyio
import msgspec
import structlog
from aiosfstream_ng.exceptions import (
    AiosfstreamException,
    AuthenticationError,
    ServerError,
)
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from metrics.instruments import (
    GAP_MARKERS,
    SALESFORCE_REPLAY_ID,
    SOURCE_CONNECTED,
    SOURCE_RECEIVED,
    SOURCE_RECONNECTS,
    SOURCE_SERVER_ERRORS,
)
from state.log import EventLog, marker
from state.records import Link, NewEvent, SourcePosition
from stream.intake import LogIntake
from stream.salesforce.aiosfstream_fixes import (
    DurableReplay,
    StreamingClient,
    SubscriptionWatch,
    TokenAuthenticator,
    quiet_cancelled_connects,
    server_error_text,
)
from stream.salesforce.auth import AuthError, SalesforceAuth
from stream.salesforce.cdc_events import NotAChangeEvent, to_log_events
from stream.salesforce.rest import SalesforceError, SalesforceRest

log = structlog.get_logger(__name__)

SOURCE: Final = "salesforce"
ORG_STREAM = "salesforce:org"
InvalidReplayPolicy = Literal["fail", "from_all", "from_new"]
_RESUME_FROM = {"from_all": -2, "from_new": -1}
LINK_MEMORY = 100_000


class InvalidReplayStop(Exception):
    """`on_invalid_replay = fail`: the source stops; an operator must move the replay id."""


@dataclass(frozen=True)
class CdcOptions:
    channels: Sequence[str]
    api_version: str
    initial_replay: int = -1
    on_invalid_replay: InvalidReplayPolicy = "from_all"
    buffer_size: int = 1000
    max_batch: int = 1000
    connection_timeout: float = 30.0
    first_backoff: float = 1.0
    max_backoff: float = 300.0


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The session's task group ends on its first failure: that one explains the session."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first(exc)
        if not isinstance(exc, anyio.get_cancelled_exc_class()):
            return exc
    return group


def _server_text(exc: ServerError) -> str:
    response = exc.response if isinstance(exc.response, dict) else {}
    return server_error_text(response) or str(exc.error_message or exc)


def _error_kind(text: str) -> str:
    lowered = text.lower()
    if "limit exceeded" in lowered:
        return "limit_exceeded"
    if text.startswith("503"):
        return "server_busy"
    if "unknown client" in lowered:
        return "unknown_client"
    if text.startswith("401") or "authentication" in lowered:
        return "auth"
    return "other"


def _report_server_error(channel: str, error: str) -> None:
    kind = _error_kind(error)
    SOURCE_SERVER_ERRORS.labels(SOURCE, kind).inc()
    log.warning("salesforce_server_error", meta_channel=channel, kind=kind, error=error)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ServerError):
        return _server_text(exc)
    return repr(exc) if not str(exc) else str(exc)


def _failure_reason(exc: BaseException) -> str:
    """A short, countable name for why a session ended."""
    if isinstance(exc, AuthError | AuthenticationError):
        return "auth_failed"
    if isinstance(exc, ServerError):
        # 403::Organization total events daily limit exceeded, 503::Server is too busy,
        # 403::Unknown client after the server dropped the session...
        kind = _error_kind(_server_text(exc))
        return kind if kind in ("limit_exceeded", "server_busy") else "server_error"
    if isinstance(exc, AiosfstreamException):
        return "connection_lost"
    return "unreachable"


def _is_invalid_replay(error: ServerError) -> bool:
    return "replayid" in str(error.error_message or "").lower() and error.error_code == 400


class CdcSource:
    def __init__(
        self,
        auth: SalesforceAuth,
        rest: SalesforceRest | None,
        intake: LogIntake,
        event_log: EventLog,
        options: CdcOptions,
    ) -> None:
        self._auth = auth
        self._rest = rest
        self._intake = intake
        self._log = event_log
        self._options = options
        self._linked: dict[str, str] = {}
        quiet_cancelled_connects()
        self._received = SOURCE_RECEIVED.labels(SOURCE)

    async def run(self) -> None:
        """Run sessions until stopped; each failure is logged, counted and backed off."""
        delay = self._options.first_backoff
        while True:
            started = anyio.current_time()
            try:
                await self.session()
                reason = "session_ended"
            except InvalidReplayStop as exc:
                log.error("salesforce_source_stopped", reason=str(exc))
                self._set_connected(False)
                return
            except (AuthError, AiosfstreamException, OSError, TimeoutError) as exc:
                reason = _failure_reason(exc)
                log.error("salesforce_session_failed", reason=reason, error=_describe(exc))
            self._set_connected(False)
            SOURCE_RECONNECTS.labels(SOURCE, reason).inc()
            if anyio.current_time() - started > 60:
                delay = self._options.first_backoff  # it was healthy a while: back off afresh
            wait = delay * random.uniform(0.5, 1.5)
            log.warning("salesforce_reconnecting", reason=reason, in_s=round(wait, 1))
            await anyio.sleep(wait)
            delay = min(delay * 2, self._options.max_backoff)

    async def _committed_replay_ids(self) -> dict[str, int]:
        ids = {}
        for channel in self._options.channels:
            stored = await self._log.position(SOURCE, channel)
            ids[channel] = int(stored) if stored is not None else self._options.initial_replay
        return ids

    async def session(self) -> None:
        """One client from handshake to failure (fixes 2 and 6: a new client each time)."""
        replay = DurableReplay(await self._committed_replay_ids())
        watch = SubscriptionWatch(_report_server_error)
        token = await self._auth.current()
        fresh = True

        async def fetch_token() -> dict[str, Any]:
            # The client asks at open (use the current token) and after a 401 (renew it).
            nonlocal token, fresh
            if not fresh:
                token = await self._auth.refresh(token)
            fresh = False
            return {
                "access_token": token.access_token,
                "token_type": token.token_type,
                "instance_url": token.instance_url,
                "id": token.id,
                "issued_at": token.issued_at,
            }

        client = StreamingClient(
            TokenAuthenticator(fetch_token),
            replay,
            watch,
            api_version=self._options.api_version,
            connection_timeout=self._options.connection_timeout,
            max_pending_count=self._options.buffer_size,
        )
        try:
            await client.open()
            for channel in self._options.channels:
                await self._subscribe(client, replay, channel)
            self._set_connected(True)
            log.info("salesforce_subscribed", channels=list(self._options.channels))
            send, receive = anyio.create_memory_object_stream[dict[str, Any]](
                self._options.buffer_size
            )
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._pull, client, send)
                    tg.start_soon(self._write, receive, replay)
                    await watch.failed.wait()
                    channel, error = watch.failures[-1]
                    raise ServerError(
                        "silent re-subscribe failure", {"error": f"{channel}: {error}"}
                    )
            except BaseExceptionGroup as group:
                raise _first(group) from None
        finally:
            # Even when cancelled (shutdown): an unclosed client leaks its HTTP session.
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await client.close()

    async def _subscribe(
        self, client: StreamingClient, replay: DurableReplay, channel: str
    ) -> None:
        try:
            await client.subscribe(channel)
        except ServerError as exc:
            if not _is_invalid_replay(exc):
                raise
            lost_after = replay.committed.get(channel)
            await self._gap(channel, lost_after, str(exc.error_message))
            if self._options.on_invalid_replay == "fail":
                raise InvalidReplayStop(
                    f"{channel}: replay id {lost_after} is no longer valid"
                ) from exc
            replay.committed[channel] = _RESUME_FROM[self._options.on_invalid_replay]
            await client.subscribe(channel)

    async def _gap(self, channel: str, lost_after: int | None, error: str) -> None:
        """Record that events after `lost_after` on `channel` cannot be replayed any more."""
        now = datetime.now(UTC)
        resume = self._options.on_invalid_replay
        GAP_MARKERS.labels(SOURCE).inc()
        log.error("salesforce_replay_gap", channel=channel, after_replay_id=lost_after, error=error)
        gap = marker(
            ORG_STREAM,
            f"gap:salesforce:{channel}:{lost_after}:{int(now.timestamp())}",
            "sfstripe.gap",
            {
                "source": SOURCE,
                "channel": channel,
                "after_replay_id": lost_after,
                "detected_at": now.isoformat(),
                "error": error,
                "resumed_from": resume,
            },
        )
        positions = []
        if resume in _RESUME_FROM:
            positions.append(SourcePosition(SOURCE, channel, str(_RESUME_FROM[resume])))
        await self._intake.submit([gap], positions)

    async def _pull(
        self, client: StreamingClient, send: MemoryObjectSendStream[dict[str, Any]]
    ) -> None:
        async with send:
            while True:
                message = await client.receive()
                self._received.inc()
                try:
                    # receive() has just yielded to the loop: no need for send()'s checkpoint,
                    # a whole loop iteration per message.
                    send.send_nowait(message)
                except anyio.WouldBlock:
                    await send.send(message)  # the buffer is full: wait for the writer

    async def _write(
        self, receive: MemoryObjectReceiveStream[dict[str, Any]], replay: DurableReplay
    ) -> None:
        async with receive:
            async for first in receive:
                batch = [first]
                while len(batch) < self._options.max_batch:
                    try:
                        batch.append(receive.receive_nowait())
                    except anyio.WouldBlock:
                        break
                await self._commit(batch, replay)

    async def _commit(self, messages: list[dict[str, Any]], replay: DurableReplay) -> None:
        events: list[NewEvent] = []
        links: list[Link] = []
        last_ids: dict[str, int] = {}
        for message in messages:
            channel = str(message.get("channel"))
            replay_id = message.get("data", {}).get("event", {}).get("replayId")
            try:
                batch_events, batch_links = to_log_events(message)
            except NotAChangeEvent as exc:
                await self._keep_aside(channel, replay_id, message, str(exc))
            else:
                events += batch_events
                links += batch_links
            if isinstance(replay_id, int):
                last_ids[channel] = replay_id
        links += await self._contact_links(events, links)
        positions = [SourcePosition(SOURCE, ch, str(rid)) for ch, rid in last_ids.items()]
        await self._intake.submit(events, positions, links)
        for channel, replay_id in last_ids.items():
            replay.committed[channel] = replay_id  # a re-subscribe resumes after the commit
            SALESFORCE_REPLAY_ID.labels(channel).set(replay_id)

    async def _keep_aside(
        self, channel: str, replay_id: object, message: dict[str, Any], error: str
    ) -> None:
        """A message that is no CDC event is kept raw with the reason; the stream goes on."""
        log.error("salesforce_message_unreadable", channel=channel, error=error)
        unreadable = NewEvent(
            customer=ORG_STREAM,
            source=SOURCE,
            source_event_id=f"unreadable:{channel}:{replay_id}",
            type="unreadable",
            occurred_at=datetime.now(UTC),
            payload=msgspec.json.encode(message).decode(),
        )
        await self._log.reject(unreadable, error)

    async def _contact_links(self, events: list[NewEvent], known: list[Link]) -> list[Link]:
        """An UPDATE omits an unchanged AccountId: find unknown contacts' accounts by REST.

        Links never change once made, so the ones seen are remembered (bounded) and the rest
        are looked up in one query per batch; only contacts still unknown cost a REST call.
        """
        for link in known:
            self._remember_link(link.alias, link.customer)
        contacts = {e.customer for e in events if e.customer.startswith("contact:")}
        unknown = contacts - self._linked.keys()
        if unknown:
            for alias, customer in (await self._log.resolve_many(list(unknown))).items():
                self._remember_link(alias, customer)
            unknown -= self._linked.keys()
        found = []
        for alias in unknown:
            if self._rest is None:
                continue
            contact_id = alias.split(":", 1)[1]
            try:
                record = await self._rest.get("Contact", contact_id, ["AccountId"])
            except SalesforceError as exc:
                log.warning("contact_account_unknown", contact=contact_id, error=str(exc))
                continue
            if isinstance(record, dict) and record.get("AccountId"):
                found.append(Link(alias, str(record["AccountId"])))
        return found

    def _remember_link(self, alias: str, customer: str) -> None:
        if len(self._linked) >= LINK_MEMORY:
            self._linked.clear()  # cheap to rebuild: one query per batch
        self._linked[alias] = customer

    def _set_connected(self, up: bool) -> None:
        for channel in self._options.channels:
            SOURCE_CONNECTED.labels(SOURCE, channel).set(1 if up else 0)
