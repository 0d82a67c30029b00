"""Account updates of concurrent lanes share sObject Collections calls, and a record Salesforce
refuses fails only its own caller (against the Salesforce-compatible test server)."""

from __future__ import annotations

from typing import Any

import aiohttp
import anyio
import pytest
import structlog

from handlers.clients import ShadowedSalesforce
from handlers.customers.composite import CompositeWriter
from handlers.errors import classify
from stream.salesforce.auth import SalesforceAuth
from stream.salesforce.rest import SalesforceError, SalesforceRest
from tests.salesforce_support import password_flow
from tests.sfserver_fixture import API_VERSION, SalesforceServer


class Counted:
    """The real REST client, with the calls it made written down."""

    def __init__(self, rest: SalesforceRest) -> None:
        self.rest = rest
        self.calls: list[tuple[str, str, Any]] = []

    async def request(
        self, method: str, path: str, *, params: dict[str, str] | None = None, json: Any = None
    ) -> Any:
        self.calls.append((method, path, json))
        return await self.rest.request(method, path, params=params, json=json)


async def test_one_call_for_many_lanes_and_a_refusal_stays_with_its_record(
    sf: SalesforceServer,
) -> None:
    await sf.set_config(fields={"Account": ["Name", "Phone"]})
    async with aiohttp.ClientSession() as session:
        rest = SalesforceRest(
            SalesforceAuth(password_flow(sf), session),
            session,
            api_version=API_VERSION,
            client_tag="sfstripe",
        )
        ids = [await rest.create("Account", {"Name": f"Lane {n}"}) for n in range(3)]
        api = Counted(rest)
        writer = CompositeWriter(window_s=0.05)
        outcomes: dict[str, BaseException | None] = {}

        async def lane(account: str, values: dict[str, Any]) -> None:
            try:
                await writer.update(api, "Account", account, values, writes_enabled=True)
                outcomes[account] = None
            except SalesforceError as exc:
                outcomes[account] = exc

        async with anyio.create_task_group() as tg:
            tg.start_soon(lane, ids[0], {"Phone": "+1 555 0100"})
            tg.start_soon(lane, ids[1], {"Not_A_Field__c": "x"})
            tg.start_soon(lane, ids[2], {"Phone": "+1 555 0102"})

        assert [(m, p, len(body["records"])) for m, p, body in api.calls] == [
            ("PATCH", "composite/sobjects", 3)
        ]
        assert api.calls[0][2]["allOrNone"] is False
        assert outcomes[ids[0]] is None and outcomes[ids[2]] is None
        refused = outcomes[ids[1]]
        assert isinstance(refused, SalesforceError)
        assert not classify(refused).retryable
        phones = {r["Id"]: r.get("Phone") for r in await sf.records("Account")}
        assert (phones[ids[0]], phones[ids[1]], phones[ids[2]]) == (
            "+1 555 0100",
            None,
            "+1 555 0102",
        )

        shadow = ShadowedSalesforce(api, writes_enabled=False, log=structlog.get_logger())
        await writer.update(shadow, "Account", ids[0], {"Phone": "0"}, writes_enabled=False)
        assert len(api.calls) == 1  # shadow mode: logged, not sent

        await sf.control("POST", "rest/fail", {"kind": "UNABLE_TO_LOCK_ROW", "count": 1})
        with pytest.raises(SalesforceError) as locked:
            await writer.update(api, "Account", ids[0], {"Phone": "1"}, writes_enabled=True)
        assert classify(locked.value).retryable
