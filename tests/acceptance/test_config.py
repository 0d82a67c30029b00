"""Configuration errors: exit code 2, one line per problem naming its variable, no secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.acceptance.support import base_environment, run_cli

COMMANDS = [("run",), ("migrate",), ("log", "--json"), ("status", "--json")]

DATABASE_PASSWORD = "pw-Zq8tUu3vLk"
STRIPE_KEY = "sk_test_51SecretKeyValue9f8e7d"
SF_SECRET = "sf-client-secret-Xy7Wv6"
WEBHOOK_SECRET = "whsec_WebhookSecretValue42"


def problem_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_every_problem_is_one_line_naming_its_variable(
    command: tuple[str, ...], workdir: Path
) -> None:
    env = base_environment(
        SFSTRIPE_DATABASE_URL="postgresql://postgres@127.0.0.1:1/never_used",
        SFSTRIPE_HTTP_PORT="abc",
        SFSTRIPE_LOG_FORMAT="xml",
    )
    result = run_cli(*command, env=env, cwd=workdir)

    assert result.returncode == 2, result
    lines = problem_lines(result.stderr)
    assert len(lines) == 2, result.stderr
    assert sum("SFSTRIPE_HTTP_PORT" in line for line in lines) == 1, result.stderr
    assert sum("SFSTRIPE_LOG_FORMAT" in line for line in lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("settings", "variables"),
    [
        ({"SFSTRIPE_METRICS_PORT": "70000"}, ["SFSTRIPE_METRICS_PORT"]),
        ({"SFSTRIPE_SHUTDOWN_GRACE": "0"}, ["SFSTRIPE_SHUTDOWN_GRACE"]),
        ({"SFSTRIPE_LOG_LEVEL": "LOUD"}, ["SFSTRIPE_LOG_LEVEL"]),
        ({"SFSTRIPE_STRIPE": "on"}, ["SFSTRIPE_STRIPE"]),
        (
            {"SFSTRIPE_SALESFORCE": "maybe", "SFSTRIPE_SF_AUTH_FLOW": "magic"},
            ["SFSTRIPE_SALESFORCE", "SFSTRIPE_SF_AUTH_FLOW"],
        ),
    ],
    ids=["port-range", "grace", "level", "stripe-without-key", "two-enums"],
)
def test_invalid_settings_exit_2(
    settings: dict[str, str], variables: list[str], workdir: Path
) -> None:
    env = base_environment(
        SFSTRIPE_DATABASE_URL="postgresql://postgres@127.0.0.1:1/never_used", **settings
    )
    result = run_cli("run", env=env, cwd=workdir)

    assert result.returncode == 2, result
    lines = problem_lines(result.stderr)
    assert len(lines) == len(variables), result.stderr
    for variable, line in zip(sorted(variables), sorted(lines), strict=True):
        assert variable in line, result.stderr


def test_secret_values_never_appear_in_the_output(workdir: Path) -> None:
    env = base_environment(
        SFSTRIPE_DATABASE_URL=f"postgresql://sfstripe:{DATABASE_PASSWORD}@127.0.0.1:1/db",
        # Stripe on with a key, in webhook mode but without webhook secrets: a problem that
        # concerns the secret-bearing settings.
        SFSTRIPE_STRIPE_API_KEY=STRIPE_KEY,
        SFSTRIPE_STRIPE_MODE="webhook",
        # Salesforce on with the password flow and only some of its credentials.
        SFSTRIPE_SF_CLIENT_ID="3MVG9client",
        SFSTRIPE_SF_AUTH_FLOW="password",
        SFSTRIPE_SF_CLIENT_SECRET=SF_SECRET,
        SFSTRIPE_HTTP_PORT="not-a-port",
    )
    result = run_cli("run", env=env, cwd=workdir)

    assert result.returncode == 2, result
    lines = problem_lines(result.stderr)
    assert len(lines) == 3, result.stderr
    assert any("SFSTRIPE_HTTP_PORT" in line for line in lines)
    assert any("SFSTRIPE_STRIPE_MODE" in line for line in lines)
    assert any("SFSTRIPE_SALESFORCE" in line and "SFSTRIPE_SF_USERNAME" in line for line in lines)
    output = result.stdout + result.stderr
    for secret in (DATABASE_PASSWORD, STRIPE_KEY, SF_SECRET):
        assert secret not in output


def test_an_unreadable_secret_file_names_the_variable_not_a_secret(workdir: Path) -> None:
    env = base_environment(
        SFSTRIPE_DATABASE_URL=f"postgresql://sfstripe:{DATABASE_PASSWORD}@127.0.0.1:1/db",
        SFSTRIPE_STRIPE_API_KEY_FILE=str(workdir / "missing-key"),
        SFSTRIPE_STRIPE_WEBHOOK_SECRETS=WEBHOOK_SECRET,
        SFSTRIPE_LOG_FORMAT="xml",
    )
    result = run_cli("run", env=env, cwd=workdir)

    assert result.returncode == 2, result
    lines = problem_lines(result.stderr)
    assert len(lines) == 2, result.stderr
    assert any("SFSTRIPE_STRIPE_API_KEY" in line and "missing-key" in line for line in lines)
    assert any("SFSTRIPE_LOG_FORMAT" in line for line in lines)
    output = result.stdout + result.stderr
    for secret in (DATABASE_PASSWORD, WEBHOOK_SECRET):
        assert secret not in output


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://sfstripe:{DATABASE_PASSWORD}@127.0.0.1:notaport/db",
        f"postgresql://sfstripe:{DATABASE_PASSWORD}@[::1/db",
    ],
    ids=["port", "ipv6"],
)
@pytest.mark.parametrize("command", [("migrate",), ("log",)], ids=lambda c: c[0])
def test_a_malformed_database_url_is_a_configuration_error(
    url: str, command: tuple[str, ...], workdir: Path
) -> None:
    result = run_cli(*command, env=base_environment(SFSTRIPE_DATABASE_URL=url), cwd=workdir)

    output = result.stdout + result.stderr
    assert DATABASE_PASSWORD not in output
    assert "Traceback" not in output, output
    assert result.returncode == 2, result
    lines = problem_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert "SFSTRIPE_DATABASE_URL" in lines[0]
