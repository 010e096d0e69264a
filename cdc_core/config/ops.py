"""The `notify` and `metrics` blocks: who hears about a cycle, and where its metrics go."""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..extras import require
from ..notify_urls import ENV_REFERENCE, check_url
from .fields import _bool, _check_keys

NOTIFY_EVENTS = ("failure", "held", "recovered", "changes")
NOTIFY_DEFAULT_EVENTS = ("failure", "held", "recovered")
NOTIFY_KEYS = {"url", "on"}
METRICS_KEYS = {"port", "host", "textfile"}


@dataclass(frozen=True)
class NotifyTarget:
    """An Apprise URL (its `${VAR}` references are expanded only when sending) and the events it gets."""

    url: str = field(repr=False)  # may hold a password written into config.json: never shown
    on: tuple[str, ...] = NOTIFY_DEFAULT_EVENTS


@dataclass(frozen=True)
class MetricsConfig:
    """Prometheus metrics: the textfile after every cycle, and `/metrics` on `host:port` in the timed loop."""

    textfile: bool = True
    port: int | None = None
    host: str = "127.0.0.1"


def _notify(raw: Any) -> tuple[NotifyTarget, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError('Config key "notify" must be a list like [{"url": "mailto://…", "on": ["failure"]}]')
    targets = []
    for i, item in enumerate(raw):
        where = f"notify[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f'Config key "{where}" must be an object with "url" (an Apprise URL) and "on"')
        _check_keys(item, NOTIFY_KEYS, f"{where}.")
        url = item.get("url")
        if not isinstance(url, str) or not url.strip():
            raise ConfigError(f'Config key "{where}.url" is missing — give an Apprise URL, e.g. '
                              '"mailto://user:${SMTP_PASSWORD}@smtp.example.com?to=ops@example.com"')
        on = item.get("on", list(NOTIFY_DEFAULT_EVENTS))
        if isinstance(on, str):
            on = [on]
        if not isinstance(on, list) or not on:
            raise ConfigError(f'Config key "{where}.on" must be a list of events: {", ".join(NOTIFY_EVENTS)}')
        for event in on:
            if event not in NOTIFY_EVENTS:
                close = difflib.get_close_matches(str(event), NOTIFY_EVENTS, n=1)
                hint = f'did you mean "{close[0]}"?' if close else f"use: {', '.join(NOTIFY_EVENTS)}"
                raise ConfigError(f'Config key "{where}.on" has an unknown event {event!r} — {hint}')
        for name in ENV_REFERENCE.findall(url):
            if name not in os.environ:
                raise ConfigError(f'Config key "{where}.url" refers to ${{{name}}}, which is not set — add '
                                  f"{name}=… to the .env file next to the config (or to the environment)")
        check_url(url.strip(), where)
        targets.append(NotifyTarget(url=url.strip(), on=tuple(dict.fromkeys(on))))
    return tuple(targets)


def _metrics(raw: Any) -> MetricsConfig:
    if raw is None:
        return MetricsConfig()
    if not isinstance(raw, dict):
        raise ConfigError('Config key "metrics" must be an object like {"port": 9108}')
    _check_keys(raw, METRICS_KEYS, "metrics.")
    require("exporting Prometheus metrics")
    port = raw.get("port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
        raise ConfigError(f'Config key "metrics.port" is {port!r} — use a TCP port number like 9108')
    host = raw.get("host", "127.0.0.1")
    if not isinstance(host, str) or not host:
        raise ConfigError(f'Config key "metrics.host" is {host!r} — use an address to listen on, e.g. "127.0.0.1" '
                          'or "0.0.0.0" for every interface')
    return MetricsConfig(textfile=_bool(raw.get("textfile", True), "metrics.textfile"), port=port, host=host)
