"""Salesforce REST: sObjects, upsert by external id, sObject collections, SOQL with paging.

Every request carries `Sforce-Call-Options: client=<tag>`, so sfstripe's own writes show up in
CDC's `changeOrigin` and can be recognised as echoes. A 401 re-authenticates once and retries.
Errors are classified from Salesforce's error bodies: retryable (re-auth failed again, lock
contention, API limits, 5xx) or permanent (validation and field errors).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
import msgspec

from stream.salesforce.auth import SalesforceAuth

RETRYABLE_CODES = frozenset(
    {"UNABLE_TO_LOCK_ROW", "REQUEST_LIMIT_EXCEEDED", "SERVER_UNAVAILABLE", "INVALID_SESSION_ID"}
)
MAX_COLLECTION = 200


class SalesforceError(Exception):
    """A Salesforce API error: `status`, `errors` ([{errorCode, message, fields}]), `retryable`."""

    def __init__(self, status: int, errors: list[dict[str, Any]]) -> None:
        codes = [str(e.get("errorCode")) for e in errors]
        messages = "; ".join(f"{e.get('errorCode')}: {e.get('message')}" for e in errors)
        super().__init__(f"HTTP {status}: {messages or 'no error body'}")
        self.status = status
        self.errors = errors
        self.retryable = (
            status >= 500 or status in (401, 429) or bool(RETRYABLE_CODES.intersection(codes))
        )


def _errors(body: bytes) -> list[dict[str, Any]]:
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return [{"errorCode": "UNPARSEABLE", "message": body[:200].decode(errors="replace")}]
    if isinstance(decoded, dict):
        decoded = [decoded]
    return [e for e in decoded if isinstance(e, dict)] if isinstance(decoded, list) else []


class SalesforceRest:
    def __init__(
        self,
        auth: SalesforceAuth,
        session: aiohttp.ClientSession,
        *,
        api_version: str,
        client_tag: str,
    ) -> None:
        self._auth = auth
        self._session = session
        self._base = f"/services/data/v{api_version}/"
        self._call_options = f"client={client_tag}"

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
    ) -> Any:
        """One call; `path` is relative to `/services/data/vXX.X/` unless it starts with `/`."""
        url_path = path if path.startswith("/") else self._base + path
        token = await self._auth.current()
        for attempt in (1, 2):
            headers = {
                "Authorization": token.authorization,
                "Sforce-Call-Options": self._call_options,
                "Accept": "application/json",
            }
            async with self._session.request(
                method,
                token.instance_url.rstrip("/") + url_path,
                params=params,
                json=json,
                headers=headers,
            ) as response:
                body = await response.read()
                status = response.status
            if status == 401 and attempt == 1:
                token = await self._auth.refresh(token)
                continue
            if status >= 400 or status == 300:
                raise SalesforceError(status, _errors(body))
            return msgspec.json.decode(body) if body else None
        raise AssertionError("unreachable")

    async def get(self, sobject: str, record_id: str, fields: Sequence[str] = ()) -> Any:
        params = {"fields": ",".join(fields)} if fields else None
        return await self.request("GET", f"sobjects/{sobject}/{record_id}", params=params)

    async def create(self, sobject: str, fields: dict[str, Any]) -> str:
        result = await self.request("POST", f"sobjects/{sobject}", json=fields)
        return str(result["id"])

    async def update(self, sobject: str, record_id: str, fields: dict[str, Any]) -> None:
        await self.request("PATCH", f"sobjects/{sobject}/{record_id}", json=fields)

    async def delete(self, sobject: str, record_id: str) -> None:
        await self.request("DELETE", f"sobjects/{sobject}/{record_id}")

    async def upsert(
        self, sobject: str, external_field: str, value: str, fields: dict[str, Any]
    ) -> tuple[str, bool]:
        """Create or update by external id: (record id, created)."""
        result = await self.request(
            "PATCH", f"sobjects/{sobject}/{external_field}/{value}", json=fields
        )
        return str(result["id"]), bool(result.get("created"))

    async def save_collection(
        self, method: str, records: Sequence[dict[str, Any]], *, all_or_none: bool
    ) -> list[dict[str, Any]]:
        """Create (POST) or update (PATCH) up to 200 records; one result per record, in order.

        Each record carries `attributes.type`. With `all_or_none` false a failed record fails
        alone: callers inspect each result's `success` and `errors`.
        """
        if len(records) > MAX_COLLECTION:
            raise ValueError(f"at most {MAX_COLLECTION} records per call, got {len(records)}")
        body = {"allOrNone": all_or_none, "records": list(records)}
        results: list[dict[str, Any]] = await self.request(method, "composite/sobjects", json=body)
        return results

    async def query(self, soql: str) -> AsyncIterator[dict[str, Any]]:
        """All records of a SOQL query, following `nextRecordsUrl` page by page."""
        page = await self.request("GET", "query", params={"q": soql})
        while True:
            for record in page["records"]:
                yield record
            next_url = page.get("nextRecordsUrl")
            if page.get("done", True) or not next_url:
                return
            page = await self.request("GET", next_url)
