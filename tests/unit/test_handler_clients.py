"""The write switch: in shadow mode reads go through, writes are logged and counted, not sent."""

from __future__ import annotations

from typing import Any

import pytest
import stripe
import structlog
import structlog.testing

from handlers.clients import ShadowedSalesforce, StripeApi
from metrics.registry import REGISTRY

LOG = structlog.get_logger("test")


class FakeResponse:
    def __init__(self, body: str) -> None:
        self.body = body


class FakeStripe:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.fail_with: BaseException | None = None

    async def raw_request_async(self, method: str, path: str, **params: Any) -> FakeResponse:
        self.calls.append((method, path, params))
        if self.fail_with is not None:
            raise self.fail_with
        return FakeResponse('{"id": "cus_1"}')


class FakeSalesforce:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def request(
        self, method: str, path: str, *, params: dict[str, str] | None = None, json: Any = None
    ) -> Any:
        self.calls.append((method, path))
        return {"id": "001"}


def skipped(api: str, method: str) -> float:
    value = REGISTRY.get_sample_value(
        "sfstripe_writes_skipped_total", {"api": api, "method": method}
    )
    return value or 0.0


def stripe_api(fake: FakeStripe, writes: bool) -> StripeApi:
    return StripeApi(fake, writes_enabled=writes, log=LOG)  # type: ignore[arg-type]


async def test_stripe_writes_on_send_with_the_idempotency_key() -> None:
    fake = FakeStripe()
    api = stripe_api(fake, writes=True)
    assert await api.request("POST", "/v1/customers", {"name": "A"}, "sfstripe:h:evt_1") == {
        "id": "cus_1"
    }
    assert await api.request("get", "/v1/customers/cus_1", idempotency_key="ignored") == {
        "id": "cus_1"
    }
    assert fake.calls == [
        ("post", "/v1/customers", {"name": "A", "idempotency_key": "sfstripe:h:evt_1"}),
        ("get", "/v1/customers/cus_1", {}),
    ]


async def test_stripe_shadow_mode_reads_but_does_not_write() -> None:
    fake = FakeStripe()
    api = stripe_api(fake, writes=False)
    before = skipped("stripe", "POST")
    with structlog.testing.capture_logs() as logs:
        assert await api.request("post", "/v1/customers", {"name": "A"}, "k") == {}
        assert await api.request("DELETE", "/v1/customers/cus_1") == {}
    assert await api.request("GET", "/v1/customers/cus_1") == {"id": "cus_1"}
    assert fake.calls == [("get", "/v1/customers/cus_1", {})]
    assert skipped("stripe", "POST") == before + 1
    assert [(r["event"], r["method"], r["path"]) for r in logs] == [
        ("write_skipped", "POST", "/v1/customers"),
        ("write_skipped", "DELETE", "/v1/customers/cus_1"),
    ]
    assert logs[0]["body"] == {"name": "A"}


async def test_stripe_rate_limits_are_counted_and_raised() -> None:
    fake = FakeStripe()
    fake.fail_with = stripe.RateLimitError("slow down", http_status=429)
    before = REGISTRY.get_sample_value("sfstripe_api_rate_limited_total", {"api": "stripe"}) or 0
    with pytest.raises(stripe.RateLimitError):
        await stripe_api(fake, writes=True).request("post", "/v1/customers")
    after = REGISTRY.get_sample_value("sfstripe_api_rate_limited_total", {"api": "stripe"})
    assert after == before + 1


@pytest.mark.parametrize("writes", [True, False])
async def test_salesforce_switch(writes: bool) -> None:
    fake = FakeSalesforce()
    api = ShadowedSalesforce(fake, writes_enabled=writes, log=LOG)
    before = skipped("salesforce", "PATCH")
    assert await api.request("get", "sobjects/Account/001") == {"id": "001"}
    result = await api.request("PATCH", "sobjects/Account/001", json={"Name": "A"})
    if writes:
        assert result == {"id": "001"}
        assert fake.calls == [("GET", "sobjects/Account/001"), ("PATCH", "sobjects/Account/001")]
        assert skipped("salesforce", "PATCH") == before
    else:
        assert result == {}
        assert fake.calls == [("GET", "sobjects/Account/001")]
        assert skipped("salesforce", "PATCH") == before + 1
