"""Stripe's error body (`{"error": {...}}`) and the status codes the SDK maps to its exceptions.

400/404 -> InvalidRequestError (or IdempotencyError by `type`), 401 -> AuthenticationError,
402 -> CardError, 429 -> RateLimitError, 5xx -> APIError.
"""

from __future__ import annotations

from typing import Any


class StripeError(Exception):
    """An API error. `stored` says whether an idempotency key keeps it: Stripe stores a result
    only once the endpoint started executing, so parameter validation errors are not stored."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
        headers: dict[str, str] | None = None,
        stored: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.decline_code = decline_code
        self.headers = headers or {}
        self.stored = stored

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.type}
        if self.code is not None:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param is not None:
            error["param"] = self.param
        if self.decline_code is not None:
            error["decline_code"] = self.decline_code
        if request_id is not None:
            error["request_log_url"] = f"https://dashboard.stripe.com/test/logs/{request_id}"
        return {"error": error}


def no_such(label: str, object_id: str, param: str = "id") -> StripeError:
    """Stripe's 404 for an unknown id: `No such customer: 'cus_x'`."""
    return StripeError(404, f"No such {label}: '{object_id}'", code="resource_missing", param=param)


def invalid(message: str, param: str | None = None, code: str = "parameter_invalid") -> StripeError:
    return StripeError(400, message, code=code, param=param)


def missing_param(param: str) -> StripeError:
    return StripeError(
        400, f"Missing required param: {param}.", code="parameter_missing", param=param
    )


def card_declined(message: str, decline_code: str = "generic_decline") -> StripeError:
    return StripeError(
        402,
        message,
        type="card_error",
        code="card_declined",
        decline_code=decline_code,
        stored=True,
    )
