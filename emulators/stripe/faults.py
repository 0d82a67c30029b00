"""Fault switches for tests: 429 (with `Stripe-Should-Retry`), 5xx and latency.

A fault applies to requests whose path starts with `path` (and whose method is `method`, when
given), for the next `count` matching requests (or for every one when `count` is null). Control:
`POST /_emulator/faults` with a JSON fault, `DELETE /_emulator/faults` clears them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from emulators.stripe.errors import StripeError

KINDS = ("rate_limit", "server_error", "latency")


@dataclass
class Fault:
    kind: str
    path: str = "/v1/"
    method: str | None = None
    count: int | None = 1
    status: int = 500
    latency_ms: int = 0
    should_retry: bool | None = None
    rate_limited_reason: str = "global-rate"

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Fault:
        kind = body.get("kind")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        fault = cls(
            kind=kind,
            path=str(body.get("path", "/v1/")),
            method=body.get("method"),
            count=body.get("count", 1),
            status=int(body.get("status", 429 if kind == "rate_limit" else 500)),
            latency_ms=int(body.get("latency_ms", 0)),
            should_retry=body.get("should_retry"),
            rate_limited_reason=str(body.get("rate_limited_reason", "global-rate")),
        )
        if fault.kind == "rate_limit" and fault.should_retry is None:
            fault.should_retry = True
        return fault

    def error(self) -> StripeError:
        headers: dict[str, str] = {}
        if self.should_retry is not None:
            headers["Stripe-Should-Retry"] = "true" if self.should_retry else "false"
        if self.kind == "rate_limit":
            headers["Stripe-Rate-Limited-Reason"] = self.rate_limited_reason
            return StripeError(
                429,
                "Request rate limit exceeded. Learn more about rate limits here "
                "https://stripe.com/docs/rate-limits.",
                code="rate_limit",
                headers=headers,
            )
        return StripeError(
            self.status,
            "An unknown error occurred (emulated fault).",
            type="api_error",
            headers=headers,
        )


@dataclass
class Faults:
    active: list[Fault] = field(default_factory=list)
    triggered: int = 0

    def add(self, fault: Fault) -> None:
        self.active.append(fault)

    def clear(self) -> None:
        self.active.clear()

    def take(self, method: str, path: str) -> list[Fault]:
        """The faults this request meets; each counted fault is used up once."""
        hits: list[Fault] = []
        for fault in list(self.active):
            if not path.startswith(fault.path):
                continue
            if fault.method is not None and fault.method.upper() != method:
                continue
            hits.append(fault)
            if fault.count is not None:
                fault.count -= 1
                if fault.count <= 0:
                    self.active.remove(fault)
        self.triggered += len(hits)
        return hits
