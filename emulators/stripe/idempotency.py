"""`Idempotency-Key`: the first result of a POST is replayed for the same key and parameters.

As on Stripe: a key reused with other parameters is an `idempotency_error` (400); a key whose
request is still running gets 409; results of requests that failed validation are not stored;
keys are pruned after 24 hours (of emulator time).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from emulators.stripe.errors import StripeError

KEY_MAX = 255
RETENTION_S = 24 * 3600


@dataclass(frozen=True)
class StoredResult:
    fingerprint: str
    status: int
    body: bytes
    request_id: str
    created: int


def fingerprint(method: str, path: str, params: dict[str, Any]) -> str:
    canonical = json.dumps([method, path, params], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class IdempotencyStore:
    results: dict[str, StoredResult] = field(default_factory=dict)
    running: set[str] = field(default_factory=set)

    def lookup(self, key: str, print_: str, now: int) -> StoredResult | None:
        """The stored result to replay, None to execute; raises on misuse of the key."""
        if len(key) > KEY_MAX:
            raise StripeError(
                400,
                f"Idempotency-Key must be at most {KEY_MAX} characters long.",
                type="idempotency_error",
            )
        stored = self.results.get(key)
        if stored is not None and now - stored.created >= RETENTION_S:
            del self.results[key]
            stored = None
        if key in self.running:
            raise StripeError(
                409,
                "There is currently another in-progress request using this Idempotent Key "
                "(that probably means you submitted twice, and the other request is still "
                "going through): " + key + ". Please try again later.",
                type="idempotency_error",
                headers={"Stripe-Should-Retry": "true"},
            )
        if stored is None:
            return None
        if stored.fingerprint != print_:
            raise StripeError(
                400,
                "Keys for idempotent requests can only be used with the same parameters they "
                f"were first used with. Try using a key other than '{key}' if you meant to "
                "execute a different request.",
                type="idempotency_error",
            )
        return stored

    def save(self, key: str, result: StoredResult) -> None:
        self.results[key] = result
