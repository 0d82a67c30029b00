"""The handler runtime's settings: defaults, start offsets, and their validation."""

from __future__ import annotations

import pytest

from sfstripe.config import ConfigError, load_settings
from sfstripe.handler_runtime import dispatch_options


def test_defaults() -> None:
    settings = load_settings({})
    assert settings.writes == "on"
    options = dispatch_options(settings)
    assert (options.concurrency, options.max_attempts, options.buffer_events) == (16, 8, 10_000)
    assert options.start_offsets == {}


def test_start_offsets_and_shadow_mode() -> None:
    settings = load_settings(
        {
            "SFSTRIPE_WRITES": "off",
            "SFSTRIPE_HANDLER_START_OFFSETS": "invoices=0, accounts=1200",
            "SFSTRIPE_HANDLER_CONCURRENCY": "4",
        }
    )
    assert settings.writes == "off"
    assert dispatch_options(settings).start_offsets == {"invoices": 0, "accounts": 1200}
    assert dispatch_options(settings).concurrency == 4


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"SFSTRIPE_HANDLER_START_OFFSETS": "invoices"}, "SFSTRIPE_HANDLER_START_OFFSETS"),
        ({"SFSTRIPE_HANDLER_START_OFFSETS": "invoices=-1"}, "SFSTRIPE_HANDLER_START_OFFSETS"),
        ({"SFSTRIPE_HANDLER_CONCURRENCY": "0"}, "SFSTRIPE_HANDLER_CONCURRENCY"),
        ({"SFSTRIPE_HANDLER_MAX_ATTEMPTS": "0"}, "SFSTRIPE_HANDLER_MAX_ATTEMPTS"),
        ({"SFSTRIPE_WRITES": "maybe"}, "SFSTRIPE_WRITES"),
        (
            {"SFSTRIPE_HANDLER_RETRY_DELAY": "10", "SFSTRIPE_HANDLER_RETRY_MAX_DELAY": "5"},
            "SFSTRIPE_HANDLER_RETRY_MAX_DELAY",
        ),
    ],
)
def test_bad_values_name_their_variable(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ)
    assert any(problem.startswith(variable) for problem in caught.value.problems)
