"""Which handler failures are retried and which become dead letters at once."""

from __future__ import annotations

import aiohttp
import pytest
import stripe

from handlers.errors import PermanentError, RetryableError, classify, retryable_http
from stream.salesforce.rest import SalesforceError


def stripe_error(
    cls: type[stripe.StripeError], status: int | None, code: str | None = None
) -> stripe.StripeError:
    body = {"error": {"code": code, "message": "m"}} if code else None
    if issubclass(cls, stripe.InvalidRequestError | stripe.CardError):
        return cls("m", None, code, http_status=status, json_body=body)  # type: ignore[arg-type]
    return cls("m", http_status=status, json_body=body, code=code)


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (stripe.APIConnectionError("reset"), True),
        (stripe_error(stripe.RateLimitError, 429), True),
        (stripe_error(stripe.RateLimitError, 429, "lock_timeout"), True),
        (stripe_error(stripe.APIError, 500), True),
        (stripe_error(stripe.APIError, 503), True),
        (stripe_error(stripe.AuthenticationError, 401), True),
        (stripe_error(stripe.InvalidRequestError, 409), True),
        (stripe_error(stripe.InvalidRequestError, 400, "lock_timeout"), True),
        (stripe_error(stripe.InvalidRequestError, 400, "parameter_invalid_integer"), False),
        (stripe_error(stripe.InvalidRequestError, 404, "resource_missing"), False),
        (stripe_error(stripe.CardError, 402, "card_declined"), False),
        (stripe_error(stripe.PermissionError, 403), False),
        (stripe_error(stripe.IdempotencyError, 400), False),
    ],
    ids=repr,
)
def test_stripe_errors(error: BaseException, retryable: bool) -> None:
    assert classify(error).retryable is retryable


@pytest.mark.parametrize(
    ("status", "codes", "retryable"),
    [
        (400, ["UNABLE_TO_LOCK_ROW"], True),
        (403, ["REQUEST_LIMIT_EXCEEDED"], True),
        (401, ["INVALID_SESSION_ID"], True),
        (503, ["SERVER_UNAVAILABLE"], True),
        (409, ["CONFLICT"], True),
        (400, ["REQUIRED_FIELD_MISSING"], False),
        (400, ["FIELD_CUSTOM_VALIDATION_EXCEPTION"], False),
        (404, ["NOT_FOUND"], False),
    ],
)
def test_salesforce_errors(status: int, codes: list[str], retryable: bool) -> None:
    error = SalesforceError(status, [{"errorCode": code, "message": "m"} for code in codes])
    assert classify(error).retryable is retryable


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (RetryableError("later"), True),
        (PermanentError("never"), False),
        (TimeoutError(), True),
        (ConnectionResetError(), True),
        (aiohttp.ServerDisconnectedError(), True),
        (KeyError("field"), False),
        (ValueError("bad"), False),
        (RuntimeError("who knows"), True),
    ],
    ids=repr,
)
def test_other_errors(error: BaseException, retryable: bool) -> None:
    verdict = classify(error)
    assert verdict.retryable is retryable
    assert type(error).__name__ in verdict.reason


def test_retry_after_is_kept() -> None:
    assert classify(RetryableError("slow down", retry_after=30)).retry_after == 30
    error = stripe.RateLimitError("m", http_status=429, headers={"Retry-After": "7"})
    assert classify(error).retry_after == 7.0


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(None, True), (408, True), (429, True), (500, True), (502, True), (400, False), (422, False)],
)
def test_http_statuses(status: int | None, retryable: bool) -> None:
    assert retryable_http(status) is retryable
