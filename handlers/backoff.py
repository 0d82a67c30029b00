"""When to try a failed event again: exponential backoff with jitter, capped."""

from __future__ import annotations

import random


def retry_delay(
    attempts: int,
    *,
    first: float,
    maximum: float,
    at_least: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after `attempts` failed attempts (1 = the first failure).

    The delay doubles per attempt up to `maximum` and is spread over [50%, 100%] of that ("equal
    jitter"), so lanes that failed together do not retry together; `at_least` (a Retry-After)
    is honoured even above `maximum`.
    """
    ceiling = min(maximum, first * 2 ** max(0, attempts - 1))
    delay: float = ceiling * (rng or random).uniform(0.5, 1.0)
    return max(delay, at_least or 0.0)
