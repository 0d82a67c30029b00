"""Reading typed values out of decoded form params, with Stripe's error for each misuse.

Form values arrive as strings; an empty string means "unset" (null), as on Stripe.
"""

from __future__ import annotations

from typing import Any

from emulators.stripe.errors import invalid, missing_param

Params = dict[str, Any]

METADATA_MAX_KEYS = 50
METADATA_KEY_MAX = 40
METADATA_VALUE_MAX = 500


def text(params: Params, key: str, default: str | None = None) -> str | None:
    value = params.get(key, default)
    if value is None or value == "":
        return None if key in params else default
    if not isinstance(value, str):
        raise invalid(f"Invalid string: {key}", key)
    return value


def required_text(params: Params, key: str) -> str:
    value = text(params, key)
    if value is None:
        raise missing_param(key)
    return value


def integer(params: Params, key: str, default: int | None = None) -> int | None:
    value = params.get(key)
    if value is None or value == "":
        return default
    try:
        return int(str(value))
    except ValueError:
        raise invalid(f"Invalid integer: {value}", key) from None


def boolean(params: Params, key: str, default: bool | None = None) -> bool | None:
    value = params.get(key)
    if value is None or value == "":
        return default
    if value in ("true", True):
        return True
    if value in ("false", False):
        return False
    raise invalid(f"Invalid boolean: {value}", key)


def mapping(params: Params, key: str) -> Params:
    value = params.get(key)
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise invalid(f"Invalid object: {key}", key)
    return value


def array(params: Params, key: str) -> list[Any]:
    value = params.get(key)
    if value is None or value == "":
        return []
    if isinstance(value, dict):  # sparse or free-form indexes: keep their order
        return list(value.values())
    if not isinstance(value, list):
        raise invalid(f"Invalid array: {key}", key)
    return value


def choice(params: Params, key: str, allowed: tuple[str, ...], default: str | None) -> str | None:
    value = text(params, key, default)
    if value is not None and value not in allowed:
        raise invalid(
            f"Invalid {key}: must be one of {', '.join(allowed)}", key, code="parameter_invalid"
        )
    return value


def apply_metadata(current: dict[str, str], params: Params, key: str = "metadata") -> None:
    """Merge `metadata[...]` into `current`: `""` deletes a key, `metadata=""` clears all."""
    if key not in params:
        return
    value = params[key]
    if value == "":
        current.clear()
        return
    if not isinstance(value, dict):
        raise invalid("Invalid metadata: must be an object", key)
    for name, item in value.items():
        if len(name) > METADATA_KEY_MAX or "[" in name or "]" in name:
            raise invalid(
                f"Metadata keys can have up to {METADATA_KEY_MAX} characters and no square "
                f"brackets: '{name}'",
                f"{key}[{name}]",
            )
        if not isinstance(item, str):
            raise invalid("Metadata values must be strings", f"{key}[{name}]")
        if len(item) > METADATA_VALUE_MAX:
            raise invalid(
                f"Metadata values can have up to {METADATA_VALUE_MAX} characters",
                f"{key}[{name}]",
            )
        if item == "":
            current.pop(name, None)
        else:
            current[name] = item
    if len(current) > METADATA_MAX_KEYS:
        raise invalid(f"Metadata can have up to {METADATA_MAX_KEYS} keys", key)
