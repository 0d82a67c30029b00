"""Settings from `SFSTRIPE_*` environment variables and an optional TOML file.

Environment variables win over the file; the file's keys are the variable names without the
prefix, in lower case. Every secret may instead be given as a file path in `<NAME>_FILE`
(container secrets). Everything is validated at start-up and every problem is reported at once.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin
from urllib.parse import urlsplit

import msgspec

from sfstripe.secrets import Secret

PREFIX = "SFSTRIPE_"
DEFAULT_LOGIN_URL = "https://login.salesforce.com"

Switch = Literal["auto", "on", "off"]
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Every setting sfstripe reads; field `x` is variable `SFSTRIPE_X`."""

    database_url: Secret | None = None
    data_dir: Path = Path(".sfstripe")
    salesforce: Switch = "auto"
    stripe: Switch = "auto"
    sf_login_url: str = DEFAULT_LOGIN_URL
    sf_auth_flow: Literal["jwt", "client_credentials", "password", "refresh_token"] = "jwt"
    sf_client_id: str | None = None
    sf_client_secret: Secret | None = None
    sf_username: str | None = None
    sf_password: Secret | None = None
    sf_private_key_file: Path | None = None
    sf_refresh_token: Secret | None = None
    sf_api_version: str = "64.0"
    sf_channels: tuple[str, ...] = ("/data/ChangeEvents",)
    sf_jwt_audience: str = DEFAULT_LOGIN_URL
    sf_client_tag: str = "sfstripe"
    sf_initial_replay: Annotated[int, msgspec.Meta(ge=-2, le=-1)] = -1
    sf_on_invalid_replay: Literal["fail", "from_all", "from_new"] = "from_all"
    stripe_api_key: Secret | None = None
    stripe_api_base: str = "https://api.stripe.com"
    stripe_api_version: str | None = None
    stripe_webhook_secrets: tuple[Secret, ...] = ()
    stripe_mode: Literal["poll", "webhook", "both"] | None = None
    stripe_initial: Literal["now", "all"] = "now"
    stripe_overlap: Annotated[int, msgspec.Meta(ge=0)] = 60
    stripe_poll_interval: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    stripe_webhook_tolerance: Annotated[int, msgspec.Meta(gt=0)] = 300
    stripe_webhook_wait: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    stripe_max_network_retries: Annotated[int, msgspec.Meta(ge=0)] = 3
    http_host: str = "127.0.0.1"
    http_port: Port = 8080
    metrics_host: str = "127.0.0.1"
    metrics_port: Port = 9464
    log_format: Literal["json", "console"] = "json"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    shutdown_grace: Annotated[float, msgspec.Meta(gt=0)] = 8.0
    writes: Literal["on", "off"] = "on"
    handler_concurrency: Annotated[int, msgspec.Meta(ge=1, le=1024)] = 16
    handler_max_attempts: Annotated[int, msgspec.Meta(ge=1)] = 8
    handler_retry_delay: Annotated[float, msgspec.Meta(gt=0)] = 1.0
    handler_retry_max_delay: Annotated[float, msgspec.Meta(gt=0)] = 300.0
    handler_buffer: Annotated[int, msgspec.Meta(ge=100)] = 10_000
    handler_start_offsets: tuple[str, ...] = ()
    customer_sync: Literal["auto", "off"] = "auto"
    mapping_file: Path | None = None
    allow_mixed_modes: bool = False

    @property
    def handler_start(self) -> dict[str, int]:
        """`SFSTRIPE_HANDLER_START_OFFSETS` (`name=offset,...`) as a mapping; validated."""
        return {
            name.strip(): int(offset)
            for name, _, offset in (item.partition("=") for item in self.handler_start_offsets)
        }

    @property
    def salesforce_enabled(self) -> bool:
        return self.salesforce == "on" or (self.salesforce == "auto" and bool(self.sf_client_id))

    @property
    def stripe_enabled(self) -> bool:
        return self.stripe == "on" or (self.stripe == "auto" and self.stripe_api_key is not None)

    @property
    def customer_sync_enabled(self) -> bool:
        """The two-way customer sync runs when both sides are connected (unless turned off)."""
        return self.customer_sync == "auto" and self.salesforce_enabled and self.stripe_enabled

    @property
    def effective_stripe_mode(self) -> Literal["poll", "webhook", "both"]:
        if self.stripe_mode is not None:
            return self.stripe_mode
        return "both" if self.stripe_webhook_secrets else "poll"


class ConfigError(Exception):
    """Settings are unusable; `problems` has one line per problem, each naming its variable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def env_name(field: str) -> str:
    return PREFIX + field.upper()


_SF_FLOW_NEEDS = {
    "jwt": ("sf_client_id", "sf_username", "sf_private_key_file"),
    "client_credentials": ("sf_client_id", "sf_client_secret"),
    "password": ("sf_client_id", "sf_client_secret", "sf_username", "sf_password"),
    "refresh_token": ("sf_client_id", "sf_refresh_token"),
}


def _is_secret(annotation: Any) -> bool:
    return (
        Secret in get_args(annotation)
        or annotation is Secret
        or (get_origin(annotation) is tuple and get_args(annotation)[0] is Secret)
    )


def _is_list(annotation: Any) -> bool:
    return get_origin(annotation) is tuple


def _dec_hook(type_: type, value: Any) -> Any:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    if type_ is Secret:
        return Secret(value)
    if type_ is Path:
        return Path(value)
    raise TypeError(f"unsupported setting type {type_.__name__}")


def _raw_values(environ: Mapping[str, str], file_values: Mapping[str, Any]) -> dict[str, Any]:
    """Per field the raw value. Precedence: the variable, its `_FILE` variable, the file's key,
    the file's `_file` key."""
    raw: dict[str, Any] = {}
    for field in msgspec.structs.fields(Settings):
        name = field.name
        secret = _is_secret(field.type)
        candidates = [
            environ.get(env_name(name)),
            ("file", environ.get(env_name(name) + "_FILE")) if secret else None,
            file_values.get(name),
            ("file", file_values.get(f"{name}_file")) if secret else None,
        ]
        for candidate in candidates:
            if candidate is not None and candidate != ("file", None):
                raw[name] = candidate
                break
    return raw


def _convert(annotation: Any, value: Any) -> Any:
    if isinstance(value, tuple) and value and value[0] == "file":
        path = Path(value[1])
        try:
            value = path.read_text().strip()
        except OSError as exc:
            raise ValueError(f"cannot read the secret file {path}: {exc.strerror}") from None
    if _is_list(annotation) and isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if value == "" and type(None) in get_args(annotation):
        return None
    try:
        return msgspec.convert(value, annotation, strict=False, dec_hook=_dec_hook)
    except msgspec.ValidationError as exc:
        raise ValueError(str(exc).replace("`", "")) from None


def _database_url_problem(settings: Settings) -> str | None:
    """A DSN asyncpg cannot parse would otherwise surface as a traceback at first connect."""
    if settings.database_url is None:
        return None
    try:
        parts = urlsplit(settings.database_url.reveal())
        parts.port  # noqa: B018 - parsing is the check
    except ValueError:
        # Not the parser's message: it can quote the password.
        return (
            f"{env_name('database_url')}: not a valid PostgreSQL URL (check the host and port;"
            " special characters in the password must be percent-encoded)"
        )
    if parts.scheme not in ("postgresql", "postgres"):
        return f"{env_name('database_url')}: expected a postgresql:// URL"
    return None


def _source_problems(settings: Settings) -> list[str]:
    problems = []
    if settings.salesforce_enabled:
        missing = [
            env_name(need)
            for need in _SF_FLOW_NEEDS[settings.sf_auth_flow]
            if getattr(settings, need) is None
        ]
        if missing:
            problems.append(
                f"{env_name('salesforce')}: Salesforce is on with the {settings.sf_auth_flow} flow,"
                f" but {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set"
            )
        key_file = settings.sf_private_key_file
        if settings.sf_auth_flow == "jwt" and key_file is not None and not key_file.is_file():
            problems.append(f"{env_name('sf_private_key_file')}: no such file: {key_file}")
        if (
            settings.sf_auth_flow == "client_credentials"
            and settings.sf_login_url.rstrip("/") == DEFAULT_LOGIN_URL
        ):
            problems.append(
                f"{env_name('sf_login_url')}: the client_credentials flow needs the org's"
                " My Domain URL (https://<domain>.my.salesforce.com), not the default login URL"
            )
    if settings.stripe_enabled:
        if settings.stripe_api_key is None:
            problems.append(
                f"{env_name('stripe')}: Stripe is on, but {env_name('stripe_api_key')} is not set"
            )
        if settings.effective_stripe_mode != "poll" and not settings.stripe_webhook_secrets:
            problems.append(
                f"{env_name('stripe_mode')}: mode {settings.effective_stripe_mode} receives"
                f" webhooks, but {env_name('stripe_webhook_secrets')} is not set"
            )
    return problems


def _handler_problems(settings: Settings) -> list[str]:
    problems = [
        f"{env_name('handler_start_offsets')}: expected name=offset with an offset >= 0,"
        f" got {item!r}"
        for item in settings.handler_start_offsets
        if not (
            (parts := item.partition("="))[1] and parts[0].strip() and parts[2].strip().isdigit()
        )
    ]
    if settings.handler_retry_max_delay < settings.handler_retry_delay:
        problems.append(
            f"{env_name('handler_retry_max_delay')}: below {env_name('handler_retry_delay')}"
        )
    return problems


def _mapping_problems(settings: Settings) -> list[str]:
    if settings.mapping_file is None:
        return []
    from handlers.customers.mapping import MappingError, load  # only when a file is named

    try:
        load(settings.mapping_file)
    except MappingError as exc:
        return [f"{env_name('mapping_file')}: {problem}" for problem in exc.problems]
    return []


def load_settings(environ: Mapping[str, str], config_file: Path | None = None) -> Settings:
    """Build validated settings, or raise ConfigError listing every problem."""
    problems: list[str] = []
    file_values: dict[str, Any] = {}
    if config_file is not None:
        try:
            file_values = tomllib.loads(config_file.read_text())
        except OSError as exc:
            raise ConfigError([f"--config: cannot read {config_file}: {exc.strerror}"]) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"--config: {config_file} is not valid TOML: {exc}"]) from None
        known = {f.name for f in msgspec.structs.fields(Settings)}
        known |= {f"{f.name}_file" for f in msgspec.structs.fields(Settings) if _is_secret(f.type)}
        problems += [
            f"--config: unknown key {key!r} in {config_file}"
            for key in file_values
            if key not in known
        ]
    values: dict[str, Any] = {}
    raw = _raw_values(environ, file_values)
    for field in msgspec.structs.fields(Settings):
        if field.name not in raw:
            continue
        try:
            values[field.name] = _convert(field.type, raw[field.name])
        except ValueError as exc:
            shown = "" if _is_secret(field.type) else f" (got {raw[field.name]!r})"
            problems.append(f"{env_name(field.name)}: {exc}{shown}")
    settings = Settings(**values)
    problems += filter(None, [_database_url_problem(settings)])
    problems += _source_problems(settings)
    problems += _handler_problems(settings)
    problems += _mapping_problems(settings)
    if problems:
        raise ConfigError(problems)
    return settings


def load_from_environment(config_file: Path | None = None) -> Settings:
    return load_settings(os.environ, config_file)


def disabled_source_hints(settings: Settings) -> dict[str, str]:
    """For each source left off, the variables that would turn it on."""
    hints = {}
    if not settings.salesforce_enabled:
        hints["salesforce"] = (
            f"set {env_name('sf_client_id')} (and the credentials of"
            f" {env_name('sf_auth_flow')}) or {env_name('salesforce')}=on"
        )
    if not settings.stripe_enabled:
        hints["stripe"] = f"set {env_name('stripe_api_key')} or {env_name('stripe')}=on"
    return hints
