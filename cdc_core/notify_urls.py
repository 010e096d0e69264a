"""Notification URLs below the config: `${VAR}` references expanded, and Apprise asked whether it can send to one.

The config checks each `notify[i].url` with `check_url` when it loads; `notify` sends with `expand`. Apprise is
the `notify` extra, imported only here and only when a URL is checked or a message sent.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

from .errors import ConfigError
from .extras import require

ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand(url: str) -> str:
    """`url` with every `${VAR}` replaced from the environment (percent-encoded, unless it is the whole URL)."""
    whole = ENV_REFERENCE.fullmatch(url.strip())

    def value(match) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ConfigError(f"A notify URL refers to ${{{name}}}, which is not set — add {name}=… to the .env "
                              "file next to the config (or to the environment)")
        return os.environ[name] if whole else quote(os.environ[name], safe="")

    return ENV_REFERENCE.sub(value, url)


def check_url(url: str, where: str) -> None:
    """Raise `ConfigError` unless Apprise is installed and understands `url` (a config's `notify[i].url`)."""
    apprise = apprise_module()
    with apprise_warnings():
        plugin = apprise.Apprise.instantiate(expand(url))
    if plugin is None:
        scheme = url.partition("://")[0] if "://" in url else url[:12]
        raise ConfigError(f'Config key "{where}.url" is not a URL Apprise can send to (scheme "{scheme}") — see '
                          "https://github.com/caronc/apprise/wiki for the URL of each service")


def apprise_module():
    require("sending notifications")
    import apprise

    return apprise


class _Collect(logging.Handler):
    def __init__(self, lines: list[str]):
        super().__init__(logging.WARNING)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextmanager
def apprise_warnings() -> Iterator[list[str]]:
    """Apprise's warnings, collected instead of printed (some quote a URL's secret parts); the caller redacts."""
    logger = logging.getLogger("apprise")
    lines: list[str] = []
    handler, propagate = _Collect(lines), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
