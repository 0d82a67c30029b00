"""Retry delays grow exponentially, are capped, spread by jitter, and honour Retry-After."""

from __future__ import annotations

import random

from handlers.backoff import retry_delay


def test_delays_double_within_jitter_and_cap() -> None:
    rng = random.Random(1)
    for attempts, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (10, 60.0), (40, 60.0)]:
        delays = [retry_delay(attempts, first=1.0, maximum=60.0, rng=rng) for _ in range(200)]
        assert all(ceiling * 0.5 <= d <= ceiling for d in delays), (attempts, min(delays))
        assert max(delays) - min(delays) > ceiling * 0.3  # jitter spreads them


def test_retry_after_wins_even_above_the_cap() -> None:
    assert retry_delay(1, first=1.0, maximum=5.0, at_least=120.0) == 120.0
    assert retry_delay(1, first=1.0, maximum=5.0, at_least=0.0) <= 1.0
