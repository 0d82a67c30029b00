"""The one place handlers are registered.

The daemon's wiring builds the sync handlers (they need settings and the database) and passes
them in as `builtins`; a handler starts from the log head the first time a daemon runs it, unless
`SFSTRIPE_HANDLER_START_OFFSETS` names another offset for it.

`SFSTRIPE_TEST_HANDLERS=module:attribute[,...]` is a test hook: it adds the handlers that the
attribute names (a handler, a sequence of handlers, or a function returning either) so that
tests can run the daemon and the CLI as subprocesses with handlers of their own. It is logged
loudly and is not a setting.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from handlers.api import BatchHandler, Handler, Registered, registered

log = structlog.get_logger(__name__)

TEST_HOOK = "SFSTRIPE_TEST_HANDLERS"
NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,62}$")


class RegistryError(Exception):
    """The registered handlers cannot run (bad or duplicate names, a broken test hook)."""


def _loaded(spec: str) -> list[Any]:
    module_name, _, attribute = spec.strip().partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise RegistryError(f"{TEST_HOOK}: cannot load {spec!r}: {exc}") from None
    if callable(found) and not hasattr(found, "name"):
        found = found()
    return list(found) if isinstance(found, Sequence) else [found]


def registered_handlers(
    environ: Mapping[str, str] = os.environ, builtins: Sequence[Handler | BatchHandler] = ()
) -> list[Registered]:
    """Every handler to run, validated: unique names of lower-case letters, digits, `_.-`."""
    handlers: list[Any] = list(builtins)
    hook = environ.get(TEST_HOOK, "").strip()
    if hook:
        for spec in hook.split(","):
            extra = _loaded(spec)
            log.warning("test_handlers_loaded", hook=TEST_HOOK, spec=spec.strip(), count=len(extra))
            handlers += extra
    result = [registered(handler) for handler in handlers]
    names = [handler.name for handler in result]
    for name in names:
        if not NAME.match(name):
            raise RegistryError(f"handler name {name!r}: use lower-case letters, digits, _ . -")
    if len(set(names)) != len(names):
        raise RegistryError(f"two handlers share a name: {sorted(names)}")
    return result
