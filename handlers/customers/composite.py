"""Account updates from concurrent lanes, sent together as sObject Collections calls.

Each lane's handler call waits for its own record's result: a collection of up to 200 records with
`allOrNone` false is one API call, and a record Salesforce refuses fails only the event that asked
for it. The first caller of a batch sends it after a short window, shielded from cancellation so
that the other callers always get an answer.
"""

from __future__ import annotations

from typing import Any

import anyio

from handlers.clients import SalesforceApi
from handlers.errors import RetryableError
from stream.salesforce.rest import MAX_COLLECTION, SalesforceError


class _Entry:
    __slots__ = ("done", "error", "record")

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record
        self.done = anyio.Event()
        self.error: BaseException | None = None


class _Batch:
    def __init__(self, api: SalesforceApi) -> None:
        self.api = api
        self.entries: dict[str, _Entry] = {}


def _refusal(result: dict[str, Any]) -> SalesforceError:
    errors = [
        {
            "errorCode": error.get("statusCode") or error.get("errorCode"),
            "message": error.get("message"),
            "fields": error.get("fields", []),
        }
        for error in result.get("errors", [])
    ]
    return SalesforceError(400, errors or [{"errorCode": "UNKNOWN", "message": str(result)}])


class CompositeWriter:
    def __init__(self, *, window_s: float = 0.02, max_records: int = MAX_COLLECTION) -> None:
        self._window = window_s
        self._max = max_records
        self._open: dict[bool, _Batch] = {}  # by writes_enabled: dry runs batch apart

    async def update(
        self,
        api: SalesforceApi,
        sobject: str,
        record_id: str,
        values: dict[str, Any],
        *,
        writes_enabled: bool,
    ) -> None:
        """Update one record; raises its own refusal as a `SalesforceError`."""
        record = {"attributes": {"type": sobject}, "Id": record_id, **values}
        batch = self._open.get(writes_enabled)
        leader = batch is None or len(batch.entries) >= self._max or record_id in batch.entries
        if leader:
            batch = _Batch(api)
            self._open[writes_enabled] = batch
        assert batch is not None
        entry = _Entry(record)
        batch.entries[record_id] = entry
        if leader:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(self._window)
                if self._open.get(writes_enabled) is batch:
                    del self._open[writes_enabled]
                await _send(batch)
        await entry.done.wait()
        if entry.error is not None:
            raise entry.error


async def _send(batch: _Batch) -> None:
    entries = list(batch.entries.values())
    try:
        body = {"allOrNone": False, "records": [entry.record for entry in entries]}
        results = await batch.api.request("PATCH", "composite/sobjects", json=body)
        if isinstance(results, list):  # shadow mode answers {} and sends nothing
            if len(results) != len(entries):
                raise RetryableError(f"{len(results)} results for {len(entries)} records")
            for entry, result in zip(entries, results, strict=True):
                if not result.get("success"):
                    entry.error = _refusal(result)
    except Exception as exc:
        for entry in entries:
            entry.error = exc
    finally:
        for entry in entries:
            entry.done.set()
