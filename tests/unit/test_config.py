"""Unit tests for `sfstripe.config` and `sfstripe.secrets`: sources, precedence, validation."""

from __future__ import annotations

import re
import string
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sfstripe.config import (
    DEFAULT_LOGIN_URL,
    ConfigError,
    Settings,
    disabled_source_hints,
    load_from_environment,
    load_settings,
)
from sfstripe.secrets import Secret

SECRET = "sk_live_TOPSECRET_7f3a9c"
MY_DOMAIN = "https://acme.my.salesforce.com"

SECRET_VARS = (
    "SFSTRIPE_DATABASE_URL",
    "SFSTRIPE_SF_CLIENT_SECRET",
    "SFSTRIPE_SF_PASSWORD",
    "SFSTRIPE_SF_REFRESH_TOKEN",
    "SFSTRIPE_STRIPE_API_KEY",
    "SFSTRIPE_STRIPE_WEBHOOK_SECRETS",
)


def problems_of(environ: dict[str, str], config_file: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ, config_file)
    return caught.value.problems


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --- Secret ---------------------------------------------------------------------------------


def test_secret_is_masked_in_repr_str_and_format() -> None:
    secret = Secret(SECRET)
    assert SECRET not in repr(secret)
    assert SECRET not in str(secret)
    assert SECRET not in f"{secret} {secret!r}"
    assert SECRET not in repr([secret, (secret,)])


def test_secret_reveal_gives_back_the_value() -> None:
    assert Secret(SECRET).reveal() == SECRET


def test_secret_equality_and_hash_follow_the_value() -> None:
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    assert Secret("a") != "a"
    assert hash(Secret("a")) == hash(Secret("a"))
    assert len({Secret("a"), Secret("a"), Secret("b")}) == 2


def test_secret_has_no_instance_dict_to_leak_through() -> None:
    assert not hasattr(Secret(SECRET), "__dict__")


# --- defaults -------------------------------------------------------------------------------


def test_empty_environment_gives_defaults_with_both_sources_off() -> None:
    settings_ = load_settings({})
    assert settings_ == Settings()
    assert settings_.salesforce == "auto"
    assert settings_.stripe == "auto"
    assert not settings_.salesforce_enabled
    assert not settings_.stripe_enabled
    assert settings_.http_port == 8080
    assert settings_.sf_login_url == DEFAULT_LOGIN_URL


def test_unrelated_environment_variables_are_ignored() -> None:
    assert load_settings({"PATH": "/bin", "SFSTRIPEX": "1", "HTTP_PORT": "x"}) == Settings()


def test_load_from_environment_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SFSTRIPE_HTTP_PORT", "9123")
    assert load_from_environment().http_port == 9123


# --- plain values from the environment ------------------------------------------------------


def test_environment_values_are_converted_to_field_types() -> None:
    settings_ = load_settings(
        {
            "SFSTRIPE_HTTP_PORT": "9000",
            "SFSTRIPE_METRICS_PORT": "65535",
            "SFSTRIPE_SHUTDOWN_GRACE": "2.5",
            "SFSTRIPE_LOG_FORMAT": "console",
            "SFSTRIPE_LOG_LEVEL": "DEBUG",
            "SFSTRIPE_SF_CHANNELS": "/data/AccountChangeEvent, /event/Foo__e",
            "SFSTRIPE_HTTP_HOST": "0.0.0.0",
        }
    )
    assert settings_.http_port == 9000
    assert settings_.metrics_port == 65535
    assert settings_.shutdown_grace == 2.5
    assert settings_.log_format == "console"
    assert settings_.log_level == "DEBUG"
    assert settings_.sf_channels == ("/data/AccountChangeEvent", "/event/Foo__e")
    assert settings_.http_host == "0.0.0.0"


def test_empty_value_of_an_optional_setting_means_unset() -> None:
    settings_ = load_settings({"SFSTRIPE_STRIPE_API_KEY": "", "SFSTRIPE_SF_CLIENT_ID": ""})
    assert settings_.stripe_api_key is None
    assert settings_.sf_client_id is None
    assert not settings_.stripe_enabled
    assert not settings_.salesforce_enabled


def test_webhook_secrets_are_a_comma_list() -> None:
    settings_ = load_settings(
        {"SFSTRIPE_STRIPE_API_KEY": SECRET, "SFSTRIPE_STRIPE_WEBHOOK_SECRETS": "whsec_a, whsec_b,"}
    )
    assert [s.reveal() for s in settings_.stripe_webhook_secrets] == ["whsec_a", "whsec_b"]
    assert all(isinstance(s, Secret) for s in settings_.stripe_webhook_secrets)


@pytest.mark.parametrize(
    "var",
    ["SFSTRIPE_STRIPE_API_KEY", "SFSTRIPE_SF_CLIENT_SECRET", "SFSTRIPE_DATABASE_URL"],
)
def test_secret_variables_become_secret_objects(var: str) -> None:
    secret = f"postgresql://u:{SECRET}@db/x" if var == "SFSTRIPE_DATABASE_URL" else SECRET
    settings_ = load_settings({var: secret, "SFSTRIPE_STRIPE": "off"})
    value = getattr(settings_, var.removeprefix("SFSTRIPE_").lower())
    assert isinstance(value, Secret)
    assert value.reveal() == secret


def test_data_dir_from_environment_is_a_path() -> None:
    assert load_settings({"SFSTRIPE_DATA_DIR": "/var/lib/sfstripe"}).data_dir == Path(
        "/var/lib/sfstripe"
    )


def test_complete_jwt_credentials_turn_salesforce_on(tmp_path: Path) -> None:
    key = write(tmp_path / "sf.key", "-----BEGIN PRIVATE KEY-----\n")
    settings_ = load_settings(
        {
            "SFSTRIPE_SF_CLIENT_ID": "3MVG9",
            "SFSTRIPE_SF_USERNAME": "integration@example.com",
            "SFSTRIPE_SF_PRIVATE_KEY_FILE": str(key),
        }
    )
    assert settings_.salesforce_enabled
    assert settings_.sf_private_key_file == key


def test_a_missing_jwt_key_file_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            {
                "SFSTRIPE_SF_CLIENT_ID": "3MVG9",
                "SFSTRIPE_SF_USERNAME": "integration@example.com",
                "SFSTRIPE_SF_PRIVATE_KEY_FILE": "/run/secrets/missing.key",
            }
        )
    assert caught.value.problems == [
        "SFSTRIPE_SF_PRIVATE_KEY_FILE: no such file: /run/secrets/missing.key"
    ]


# --- secrets from <NAME>_FILE ---------------------------------------------------------------


def test_secret_is_read_from_file_and_stripped(tmp_path: Path) -> None:
    key_file = write(tmp_path / "key", f"  {SECRET}\n\n")
    settings_ = load_settings({"SFSTRIPE_STRIPE_API_KEY_FILE": str(key_file)})
    assert settings_.stripe_api_key == Secret(SECRET)
    assert settings_.stripe_enabled


@pytest.mark.parametrize("var", SECRET_VARS)
def test_every_secret_accepts_a_file(tmp_path: Path, var: str) -> None:
    expected = "postgresql://u:p@db/x" if var == "SFSTRIPE_DATABASE_URL" else "value_from_file"
    secret_file = write(tmp_path / "secret", f"{expected}\n")
    settings_ = load_settings({f"{var}_FILE": str(secret_file), "SFSTRIPE_STRIPE": "off"})
    value = getattr(settings_, var.removeprefix("SFSTRIPE_").lower())
    if isinstance(value, tuple):
        assert value == (Secret(expected),)
    else:
        assert value == Secret(expected)


def test_webhook_secrets_file_holds_a_comma_list(tmp_path: Path) -> None:
    secret_file = write(tmp_path / "whsec", "whsec_a,whsec_b\n")
    settings_ = load_settings(
        {
            "SFSTRIPE_STRIPE_API_KEY": SECRET,
            "SFSTRIPE_STRIPE_WEBHOOK_SECRETS_FILE": str(secret_file),
        }
    )
    assert settings_.stripe_webhook_secrets == (Secret("whsec_a"), Secret("whsec_b"))


def test_plain_variable_wins_over_file_variable(tmp_path: Path) -> None:
    key_file = write(tmp_path / "key", "sk_from_file")
    settings_ = load_settings(
        {"SFSTRIPE_STRIPE_API_KEY": "sk_plain", "SFSTRIPE_STRIPE_API_KEY_FILE": str(key_file)}
    )
    assert settings_.stripe_api_key == Secret("sk_plain")


def test_plain_variable_wins_even_over_an_unreadable_file_variable(tmp_path: Path) -> None:
    settings_ = load_settings(
        {
            "SFSTRIPE_STRIPE_API_KEY": "sk_plain",
            "SFSTRIPE_STRIPE_API_KEY_FILE": str(tmp_path / "missing"),
        }
    )
    assert settings_.stripe_api_key == Secret("sk_plain")


def test_unreadable_secret_file_is_a_config_error_naming_the_variable(tmp_path: Path) -> None:
    problems = problems_of({"SFSTRIPE_STRIPE_API_KEY_FILE": str(tmp_path / "missing")})
    assert len(problems) == 1
    assert problems[0].startswith("SFSTRIPE_STRIPE_API_KEY: ")
    assert "missing" in problems[0]


def test_secret_file_that_is_a_directory_is_a_config_error(tmp_path: Path) -> None:
    problems = problems_of({"SFSTRIPE_SF_PASSWORD_FILE": str(tmp_path)})
    assert [p.split(":", 1)[0] for p in problems] == ["SFSTRIPE_SF_PASSWORD"]


# --- TOML file ------------------------------------------------------------------------------


def test_values_come_from_the_toml_file(tmp_path: Path) -> None:
    config = write(
        tmp_path / "sfstripe.toml",
        'http_port = 9001\nlog_format = "console"\nsf_channels = ["/data/A", "/data/B"]\n'
        f'stripe_api_key = "{SECRET}"\nstripe_webhook_secrets = ["whsec_1", "whsec_2"]\n',
    )
    settings_ = load_settings({}, config)
    assert settings_.http_port == 9001
    assert settings_.log_format == "console"
    assert settings_.sf_channels == ("/data/A", "/data/B")
    assert settings_.stripe_api_key == Secret(SECRET)
    assert settings_.stripe_webhook_secrets == (Secret("whsec_1"), Secret("whsec_2"))
    assert settings_.effective_stripe_mode == "both"


def test_environment_wins_over_the_toml_file(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", 'http_port = 9001\nlog_level = "ERROR"\n')
    settings_ = load_settings({"SFSTRIPE_HTTP_PORT": "9002"}, config)
    assert settings_.http_port == 9002
    assert settings_.log_level == "ERROR"


def test_environment_secret_file_wins_over_the_toml_plain_secret(tmp_path: Path) -> None:
    key_file = write(tmp_path / "key", "sk_from_env_file")
    config = write(tmp_path / "c.toml", 'stripe_api_key = "sk_from_toml"\n')
    settings_ = load_settings({"SFSTRIPE_STRIPE_API_KEY_FILE": str(key_file)}, config)
    assert settings_.stripe_api_key == Secret("sk_from_env_file")


def test_toml_file_may_name_a_secret_file(tmp_path: Path) -> None:
    key_file = write(tmp_path / "key", "sk_from_file\n")
    config = write(tmp_path / "c.toml", f'stripe_api_key_file = "{key_file}"\n')
    assert load_settings({}, config).stripe_api_key == Secret("sk_from_file")


def test_plain_toml_key_wins_over_toml_file_key(tmp_path: Path) -> None:
    key_file = write(tmp_path / "key", "sk_from_file")
    config = write(
        tmp_path / "c.toml", f'stripe_api_key = "sk_plain"\nstripe_api_key_file = "{key_file}"\n'
    )
    assert load_settings({}, config).stripe_api_key == Secret("sk_plain")


@pytest.mark.parametrize("key", ["http_prot", "HTTP_PORT", "sfstripe_http_port", "http_port_file"])
def test_unknown_toml_key_is_an_error(tmp_path: Path, key: str) -> None:
    config = write(tmp_path / "c.toml", f"{key} = 1\n")
    problems = problems_of({}, config)
    assert len(problems) == 1
    assert repr(key) in problems[0]


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", f'stripe_api_key = "{SECRET}"\nhttp_port = \n')
    problems = problems_of({}, config)
    assert len(problems) == 1
    assert "TOML" in problems[0]
    assert SECRET not in problems[0]


def test_missing_toml_file_is_a_config_error(tmp_path: Path) -> None:
    problems = problems_of({}, tmp_path / "absent.toml")
    assert len(problems) == 1
    assert "absent.toml" in problems[0]


def test_bad_value_in_toml_file_names_the_variable(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", "http_port = 0\n")
    assert [p.split(":", 1)[0] for p in problems_of({}, config)] == ["SFSTRIPE_HTTP_PORT"]


# --- bad values -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("SFSTRIPE_HTTP_PORT", "abc"),
        ("SFSTRIPE_HTTP_PORT", "80.5"),
        ("SFSTRIPE_HTTP_PORT", "0"),
        ("SFSTRIPE_HTTP_PORT", "65536"),
        ("SFSTRIPE_METRICS_PORT", "-1"),
        ("SFSTRIPE_LOG_FORMAT", "xml"),
        ("SFSTRIPE_LOG_LEVEL", "TRACE"),
        ("SFSTRIPE_SALESFORCE", "yes"),
        ("SFSTRIPE_STRIPE", "enabled"),
        ("SFSTRIPE_SF_AUTH_FLOW", "saml"),
        ("SFSTRIPE_STRIPE_MODE", "push"),
        ("SFSTRIPE_SHUTDOWN_GRACE", "0"),
        ("SFSTRIPE_SHUTDOWN_GRACE", "-3"),
        ("SFSTRIPE_SHUTDOWN_GRACE", "nan"),
        ("SFSTRIPE_SHUTDOWN_GRACE", "soon"),
    ],
)
def test_bad_value_is_one_problem_naming_its_variable(var: str, value: str) -> None:
    problems = problems_of({var: value})
    assert len(problems) == 1
    assert problems[0].startswith(f"{var}: ")


@given(port=st.integers(min_value=-100_000, max_value=100_000))
@settings(max_examples=60, deadline=None)
def test_port_is_accepted_exactly_in_range(port: int) -> None:
    environ = {"SFSTRIPE_METRICS_PORT": str(port)}
    if 1 <= port <= 65535:
        assert load_settings(environ).metrics_port == port
    else:
        with pytest.raises(ConfigError) as caught:
            load_settings(environ)
        assert caught.value.problems[0].startswith("SFSTRIPE_METRICS_PORT: ")


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", "no_such_setting = 1\n")
    problems = problems_of(
        {
            "SFSTRIPE_HTTP_PORT": "abc",
            "SFSTRIPE_METRICS_PORT": "70000",
            "SFSTRIPE_LOG_FORMAT": "xml",
            "SFSTRIPE_SHUTDOWN_GRACE": "0",
            "SFSTRIPE_STRIPE": "on",
        },
        config,
    )
    named = [p.split(":", 1)[0] for p in problems]
    for var in (
        "SFSTRIPE_HTTP_PORT",
        "SFSTRIPE_METRICS_PORT",
        "SFSTRIPE_LOG_FORMAT",
        "SFSTRIPE_SHUTDOWN_GRACE",
        "SFSTRIPE_STRIPE",
    ):
        assert var in named
    assert any("no_such_setting" in p for p in problems)


def test_config_error_message_is_one_line_per_problem() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"SFSTRIPE_HTTP_PORT": "abc", "SFSTRIPE_LOG_FORMAT": "xml"})
    lines = str(caught.value).splitlines()
    assert lines == caught.value.problems
    assert len(lines) == 2
    assert all(re.match(r"^SFSTRIPE_[A-Z_]+: \S", line) for line in lines)


# --- source switches ------------------------------------------------------------------------


def test_auto_turns_stripe_on_when_the_api_key_is_set() -> None:
    settings_ = load_settings({"SFSTRIPE_STRIPE_API_KEY": SECRET})
    assert settings_.stripe_enabled
    assert not settings_.salesforce_enabled


def test_auto_turns_salesforce_on_when_the_client_id_is_set() -> None:
    settings_ = load_settings(
        {
            "SFSTRIPE_SF_CLIENT_ID": "3MVG9",
            "SFSTRIPE_SF_AUTH_FLOW": "refresh_token",
            "SFSTRIPE_SF_REFRESH_TOKEN": SECRET,
        }
    )
    assert settings_.salesforce_enabled
    assert not settings_.stripe_enabled


def test_auto_salesforce_with_client_id_but_incomplete_credentials_is_an_error() -> None:
    problems = problems_of({"SFSTRIPE_SF_CLIENT_ID": "3MVG9", "SFSTRIPE_SF_AUTH_FLOW": "password"})
    assert len(problems) == 1
    assert problems[0].startswith("SFSTRIPE_SALESFORCE: ")
    assert "SFSTRIPE_SF_PASSWORD" in problems[0]


def test_off_keeps_sources_off_despite_credentials() -> None:
    settings_ = load_settings(
        {
            "SFSTRIPE_SALESFORCE": "off",
            "SFSTRIPE_STRIPE": "off",
            "SFSTRIPE_SF_CLIENT_ID": "3MVG9",
            "SFSTRIPE_STRIPE_API_KEY": SECRET,
        }
    )
    assert not settings_.salesforce_enabled
    assert not settings_.stripe_enabled


def test_off_skips_credential_checks() -> None:
    settings_ = load_settings({"SFSTRIPE_SALESFORCE": "off", "SFSTRIPE_SF_CLIENT_ID": "3MVG9"})
    assert not settings_.salesforce_enabled


@pytest.mark.parametrize(
    ("flow", "missing"),
    [
        ("jwt", ["SFSTRIPE_SF_CLIENT_ID", "SFSTRIPE_SF_USERNAME", "SFSTRIPE_SF_PRIVATE_KEY_FILE"]),
        ("client_credentials", ["SFSTRIPE_SF_CLIENT_ID", "SFSTRIPE_SF_CLIENT_SECRET"]),
        (
            "password",
            [
                "SFSTRIPE_SF_CLIENT_ID",
                "SFSTRIPE_SF_CLIENT_SECRET",
                "SFSTRIPE_SF_USERNAME",
                "SFSTRIPE_SF_PASSWORD",
            ],
        ),
        ("refresh_token", ["SFSTRIPE_SF_CLIENT_ID", "SFSTRIPE_SF_REFRESH_TOKEN"]),
    ],
)
def test_salesforce_on_without_credentials_names_everything_missing(
    flow: str, missing: list[str]
) -> None:
    problems = problems_of(
        {
            "SFSTRIPE_SALESFORCE": "on",
            "SFSTRIPE_SF_AUTH_FLOW": flow,
            "SFSTRIPE_SF_LOGIN_URL": MY_DOMAIN,
        }
    )
    assert len(problems) == 1
    assert problems[0].startswith("SFSTRIPE_SALESFORCE: ")
    assert flow in problems[0]
    for var in missing:
        assert re.search(rf"\b{var}\b", problems[0]), var
    # nothing beyond what the flow needs is reported as missing
    others = {
        "SFSTRIPE_SF_CLIENT_ID",
        "SFSTRIPE_SF_CLIENT_SECRET",
        "SFSTRIPE_SF_USERNAME",
        "SFSTRIPE_SF_PASSWORD",
        "SFSTRIPE_SF_PRIVATE_KEY_FILE",
        "SFSTRIPE_SF_REFRESH_TOKEN",
    } - set(missing)
    for var in others:
        assert not re.search(rf"\b{var}\b", problems[0]), var


def test_salesforce_on_names_only_the_credentials_still_missing() -> None:
    problems = problems_of(
        {
            "SFSTRIPE_SALESFORCE": "on",
            "SFSTRIPE_SF_AUTH_FLOW": "password",
            "SFSTRIPE_SF_CLIENT_ID": "3MVG9",
            "SFSTRIPE_SF_USERNAME": "integration@example.com",
        }
    )
    assert len(problems) == 1
    assert "SFSTRIPE_SF_CLIENT_SECRET" in problems[0]
    assert "SFSTRIPE_SF_PASSWORD" in problems[0]
    assert "SFSTRIPE_SF_CLIENT_ID" not in problems[0]
    assert "SFSTRIPE_SF_USERNAME" not in problems[0]


@pytest.mark.parametrize(
    ("flow", "creds"),
    [
        ("password", {"SFSTRIPE_SF_USERNAME": "u@example.com", "SFSTRIPE_SF_PASSWORD": SECRET}),
        ("refresh_token", {"SFSTRIPE_SF_REFRESH_TOKEN": SECRET}),
    ],
)
def test_salesforce_on_with_complete_credentials_is_accepted(
    flow: str, creds: dict[str, str]
) -> None:
    environ = {
        "SFSTRIPE_SALESFORCE": "on",
        "SFSTRIPE_SF_AUTH_FLOW": flow,
        "SFSTRIPE_SF_CLIENT_ID": "3MVG9",
        "SFSTRIPE_SF_CLIENT_SECRET": "cs",
        **creds,
    }
    assert load_settings(environ).salesforce_enabled


def test_client_credentials_with_my_domain_is_accepted() -> None:
    settings_ = load_settings(
        {
            "SFSTRIPE_SF_AUTH_FLOW": "client_credentials",
            "SFSTRIPE_SF_CLIENT_ID": "3MVG9",
            "SFSTRIPE_SF_CLIENT_SECRET": SECRET,
            "SFSTRIPE_SF_LOGIN_URL": MY_DOMAIN,
        }
    )
    assert settings_.salesforce_enabled
    assert settings_.sf_login_url == MY_DOMAIN


@pytest.mark.parametrize("login_url", [None, DEFAULT_LOGIN_URL, DEFAULT_LOGIN_URL + "/"])
def test_client_credentials_needs_a_my_domain_login_url(login_url: str | None) -> None:
    environ = {
        "SFSTRIPE_SF_AUTH_FLOW": "client_credentials",
        "SFSTRIPE_SF_CLIENT_ID": "3MVG9",
        "SFSTRIPE_SF_CLIENT_SECRET": SECRET,
    }
    if login_url is not None:
        environ["SFSTRIPE_SF_LOGIN_URL"] = login_url
    problems = problems_of(environ)
    assert len(problems) == 1
    assert problems[0].startswith("SFSTRIPE_SF_LOGIN_URL: ")


def test_client_credentials_reports_missing_secret_and_default_url_together() -> None:
    problems = problems_of(
        {
            "SFSTRIPE_SALESFORCE": "on",
            "SFSTRIPE_SF_AUTH_FLOW": "client_credentials",
            "SFSTRIPE_SF_CLIENT_ID": "3MVG9",
        }
    )
    assert sorted(p.split(":", 1)[0] for p in problems) == [
        "SFSTRIPE_SALESFORCE",
        "SFSTRIPE_SF_LOGIN_URL",
    ]


def test_stripe_on_without_api_key_is_an_error() -> None:
    problems = problems_of({"SFSTRIPE_STRIPE": "on"})
    assert len(problems) == 1
    assert problems[0].startswith("SFSTRIPE_STRIPE: ")
    assert "SFSTRIPE_STRIPE_API_KEY" in problems[0]


# --- stripe mode ----------------------------------------------------------------------------


def test_stripe_mode_defaults_to_poll_without_webhook_secrets() -> None:
    assert load_settings({"SFSTRIPE_STRIPE_API_KEY": SECRET}).effective_stripe_mode == "poll"


def test_stripe_mode_defaults_to_both_with_webhook_secrets() -> None:
    settings_ = load_settings(
        {"SFSTRIPE_STRIPE_API_KEY": SECRET, "SFSTRIPE_STRIPE_WEBHOOK_SECRETS": "whsec_a"}
    )
    assert settings_.effective_stripe_mode == "both"


@pytest.mark.parametrize("mode", ["poll", "webhook", "both"])
def test_explicit_stripe_mode_is_kept(mode: str) -> None:
    settings_ = load_settings(
        {
            "SFSTRIPE_STRIPE_API_KEY": SECRET,
            "SFSTRIPE_STRIPE_WEBHOOK_SECRETS": "whsec_a",
            "SFSTRIPE_STRIPE_MODE": mode,
        }
    )
    assert settings_.effective_stripe_mode == mode


@pytest.mark.parametrize("mode", ["webhook", "both"])
def test_webhook_modes_without_secrets_are_an_error(mode: str) -> None:
    problems = problems_of({"SFSTRIPE_STRIPE_API_KEY": SECRET, "SFSTRIPE_STRIPE_MODE": mode})
    assert len(problems) == 1
    assert problems[0].startswith("SFSTRIPE_STRIPE_MODE: ")
    assert "SFSTRIPE_STRIPE_WEBHOOK_SECRETS" in problems[0]


def test_blank_webhook_secrets_list_counts_as_none() -> None:
    problems = problems_of(
        {
            "SFSTRIPE_STRIPE_API_KEY": SECRET,
            "SFSTRIPE_STRIPE_MODE": "webhook",
            "SFSTRIPE_STRIPE_WEBHOOK_SECRETS": " , ,",
        }
    )
    assert [p.split(":", 1)[0] for p in problems] == ["SFSTRIPE_STRIPE_MODE"]


# --- secrets never leak ---------------------------------------------------------------------


def test_settings_repr_and_str_hide_every_secret(tmp_path: Path) -> None:
    db_file = write(tmp_path / "db", f"postgresql://u:{SECRET}_db@h/d\n")
    settings_ = load_settings(
        {
            "SFSTRIPE_DATABASE_URL_FILE": str(db_file),
            "SFSTRIPE_SF_AUTH_FLOW": "password",
            "SFSTRIPE_SF_CLIENT_ID": "3MVG9",
            "SFSTRIPE_SF_CLIENT_SECRET": SECRET + "_cs",
            "SFSTRIPE_SF_USERNAME": "u@example.com",
            "SFSTRIPE_SF_PASSWORD": SECRET + "_pw",
            "SFSTRIPE_SF_REFRESH_TOKEN": SECRET + "_rt",
            "SFSTRIPE_STRIPE_API_KEY": SECRET + "_sk",
            "SFSTRIPE_STRIPE_WEBHOOK_SECRETS": f"{SECRET}_wh1,{SECRET}_wh2",
        }
    )
    assert settings_.stripe_api_key == Secret(SECRET + "_sk")
    assert SECRET not in repr(settings_)
    assert SECRET not in str(settings_)


def test_config_errors_never_show_secrets(tmp_path: Path) -> None:
    """Every secret is set to a valid value while other settings are bad."""
    problems = problems_of(
        {
            "SFSTRIPE_DATABASE_URL": f"postgresql://u:{SECRET}@h/d",
            "SFSTRIPE_SALESFORCE": "on",
            "SFSTRIPE_SF_AUTH_FLOW": "client_credentials",
            "SFSTRIPE_SF_CLIENT_SECRET": SECRET,
            "SFSTRIPE_SF_PASSWORD": SECRET,
            "SFSTRIPE_SF_REFRESH_TOKEN": SECRET,
            "SFSTRIPE_STRIPE_API_KEY": SECRET,
            "SFSTRIPE_STRIPE_WEBHOOK_SECRETS": SECRET,
            "SFSTRIPE_STRIPE_MODE": "push",
            "SFSTRIPE_HTTP_PORT": "nope",
        }
    )
    assert len(problems) >= 3
    assert all(SECRET not in p for p in problems)


def test_bad_secret_file_error_does_not_show_secrets(tmp_path: Path) -> None:
    """One secret comes from a readable file, another file path is bad."""
    good = write(tmp_path / "good", SECRET + "\n")
    problems = problems_of(
        {
            "SFSTRIPE_STRIPE_API_KEY_FILE": str(good),
            "SFSTRIPE_SF_CLIENT_SECRET": SECRET,
            "SFSTRIPE_SF_PASSWORD_FILE": str(tmp_path / "no-such-file"),
            "SFSTRIPE_LOG_LEVEL": "LOUD",
        }
    )
    assert sorted(p.split(":", 1)[0] for p in problems) == [
        "SFSTRIPE_LOG_LEVEL",
        "SFSTRIPE_SF_PASSWORD",
    ]
    assert all(SECRET not in p for p in problems)


def test_wrongly_typed_secret_list_in_toml_is_reported_without_showing_it(
    tmp_path: Path,
) -> None:
    config = write(tmp_path / "c.toml", f'stripe_webhook_secrets = {{ a = "{SECRET}" }}\n')
    problems = problems_of({}, config)
    assert [p.split(":", 1)[0] for p in problems] == ["SFSTRIPE_STRIPE_WEBHOOK_SECRETS"]
    assert SECRET not in problems[0]


@pytest.mark.parametrize(
    "line",
    ["stripe_api_key = 12345", f'stripe_api_key = ["{SECRET}"]', "stripe_webhook_secrets = [1]"],
)
def test_non_string_secret_in_toml_is_a_config_error(tmp_path: Path, line: str) -> None:
    config = write(tmp_path / "c.toml", line + "\n")
    problems = problems_of({}, config)
    assert len(problems) == 1
    assert problems[0].startswith(
        ("SFSTRIPE_STRIPE_API_KEY: ", "SFSTRIPE_STRIPE_WEBHOOK_SECRETS: ")
    )
    assert SECRET not in problems[0]


def test_path_setting_does_not_hide_other_problems() -> None:
    problems = problems_of({"SFSTRIPE_DATA_DIR": "/var/lib/sfstripe", "SFSTRIPE_HTTP_PORT": "x"})
    assert [p.split(":", 1)[0] for p in problems] == ["SFSTRIPE_HTTP_PORT"]


@given(
    secret=st.text(alphabet=string.ascii_letters + string.digits + "_-+/=", min_size=12).map(
        lambda s: "zzSECRETzz" + s
    ),
    var=st.sampled_from(SECRET_VARS),
)
@settings(max_examples=50, deadline=None)
def test_no_secret_value_leaks_into_errors_or_repr(secret: str, var: str) -> None:
    if var == "SFSTRIPE_DATABASE_URL":
        secret = quote(secret, safe="")
        environ_url = f"postgresql://sfstripe:{secret}@db/sfstripe"
    else:
        environ_url = secret
    environ = {var: environ_url, "SFSTRIPE_STRIPE": "off", "SFSTRIPE_SALESFORCE": "off"}
    assert secret not in repr(load_settings(environ))
    environ["SFSTRIPE_HTTP_PORT"] = "bad"
    environ["SFSTRIPE_STRIPE"] = "on"
    with pytest.raises(ConfigError) as caught:
        load_settings(environ)
    assert secret not in str(caught.value)
    assert secret not in repr(caught.value)


# --- hints ----------------------------------------------------------------------------------


def test_hints_name_the_variables_for_each_disabled_source() -> None:
    hints = disabled_source_hints(load_settings({}))
    assert set(hints) == {"salesforce", "stripe"}
    assert "SFSTRIPE_SF_CLIENT_ID" in hints["salesforce"]
    assert "SFSTRIPE_SALESFORCE=on" in hints["salesforce"]
    assert "SFSTRIPE_STRIPE_API_KEY" in hints["stripe"]
    assert "SFSTRIPE_STRIPE=on" in hints["stripe"]


def test_no_hint_for_an_enabled_source() -> None:
    hints = disabled_source_hints(load_settings({"SFSTRIPE_STRIPE_API_KEY": SECRET}))
    assert set(hints) == {"salesforce"}


def test_hint_given_for_a_source_switched_off() -> None:
    hints = disabled_source_hints(
        load_settings({"SFSTRIPE_STRIPE": "off", "SFSTRIPE_STRIPE_API_KEY": SECRET})
    )
    assert "stripe" in hints


def test_an_unparseable_database_url_is_refused_without_quoting_it() -> None:
    url = "postgresql://sfstripe:hunter2/with-slash@db/sfstripe"  # an unencoded '/' in it
    with pytest.raises(ConfigError) as caught:
        load_settings({"SFSTRIPE_DATABASE_URL": url})
    assert caught.value.problems[0].startswith("SFSTRIPE_DATABASE_URL: not a valid PostgreSQL URL")
    assert "hunter2" not in str(caught.value)
