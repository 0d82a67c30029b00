"""Which failures are worth retrying.

Retryable: network errors and timeouts, 429, 5xx, 401 (the clients re-authenticate once before
raising it), 409 and lock conflicts (Stripe `lock_timeout`, Salesforce `UNABLE_TO_LOCK_ROW`,
`REQUEST_LIMIT_EXCEEDED`). Permanent: validation errors and every other 4xx: sending the same
request again cannot succeed, so the event becomes a dead letter at once. An exception of an
unknown kind is retried: a transient fault heals, a bug still ends as a dead letter after the
last attempt.
"""

from __future__ import annotations

from collections.abc import Iterable

import aiohttp
import asyncpg
import msgspec
import stripe

from stream.salesforce.rest import SalesforceError

RETRYABLE_STATUSES = frozenset({401, 408, 409, 425, 429})
RETRYABLE_CODES = frozenset(
    {
        "lock_timeout",
        "rate_limit",
        "UNABLE_TO_LOCK_ROW",
        "REQUEST_LIMIT_EXCEEDED",
        "SERVER_UNAVAILABLE",
    }
)


class HandlerError(Exception):
    """Raised by a handler to say how its failure is to be treated."""


class RetryableError(HandlerError):
    """Try again later; `retry_after` (seconds) is a lower bound for the wait, if known."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(HandlerError):
    """Trying again cannot help: park the customer's lane with a dead letter."""


class Verdict(msgspec.Struct, frozen=True):
    retryable: bool
    reason: str
    retry_after: float | None = None


def retryable_http(status: int | None, codes: Iterable[str] = ()) -> bool:
    """The classification of an HTTP API error by status and error codes."""
    if RETRYABLE_CODES.intersection(codes):
        return True
    if status is None:
        return True  # no response at all: a network failure
    return status >= 500 or status in RETRYABLE_STATUSES


def _retry_after(headers: object) -> float | None:
    if not isinstance(headers, dict):
        return None
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def classify(exc: BaseException) -> Verdict:  # noqa: PLR0911 - one return per kind
    """How the runtime treats `exc` raised by a handler."""
    reason = _describe(exc)
    if isinstance(exc, RetryableError):
        return Verdict(True, reason, exc.retry_after)
    if isinstance(exc, PermanentError):
        return Verdict(False, reason)
    if isinstance(exc, stripe.StripeError):
        if isinstance(exc, stripe.APIConnectionError):
            return Verdict(True, reason)
        if isinstance(exc, stripe.IdempotencyError):
            return Verdict(False, reason)  # same key, other parameters: a bug, not a blip
        retryable = retryable_http(exc.http_status, [exc.code] if exc.code else [])
        return Verdict(retryable, reason, _retry_after(exc.headers) if retryable else None)
    if isinstance(exc, SalesforceError):
        codes = [str(error.get("errorCode")) for error in exc.errors]
        return Verdict(exc.retryable or retryable_http(exc.status, codes), reason)
    if isinstance(exc, aiohttp.ClientResponseError):
        return Verdict(retryable_http(exc.status), reason)
    if isinstance(exc, OSError | TimeoutError | aiohttp.ClientError | asyncpg.InterfaceError):
        return Verdict(True, reason)
    if isinstance(exc, asyncpg.PostgresError):
        # Serialization failures, deadlocks and lost connections heal; constraint violations not.
        state = str(getattr(exc, "sqlstate", "") or "")
        return Verdict(state.startswith(("08", "40", "53", "57")), reason)
    if isinstance(exc, ValueError | TypeError | KeyError | LookupError | msgspec.ValidationError):
        return Verdict(False, reason)  # the event cannot be handled as it is
    return Verdict(True, reason)
