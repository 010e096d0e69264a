"""A libpq DSN (URI or key=value) read for messages — user, host, port, database, and the password to mask — and
given a connect timeout and TCP keepalives, the PG* variables filling what it leaves out."""

from __future__ import annotations

import os
import re
import urllib.parse

DEFAULTS = {"connect_timeout": "15", "keepalives_idle": "60", "keepalives_interval": "10", "keepalives_count": "3",
            "application_name": "cdc_core"}


def dsn_parts(dsn: str) -> dict[str, str]:
    """user, host, port, dbname and password of a libpq DSN (URI or key=value), the PG* variables filling gaps."""
    parts: dict[str, str] = {}
    if re.match(r"postgres(ql)?://", dsn):
        url = urllib.parse.urlsplit(dsn)
        netloc = url.netloc.rpartition("@")
        if netloc[1]:
            user, _, password = netloc[0].partition(":")
            parts.update(user=urllib.parse.unquote(user), password=urllib.parse.unquote(password))
        hostport = netloc[2]
        host, _, port = hostport.rpartition(":") if not hostport.endswith("]") and ":" in hostport \
            else (hostport, "", "")
        parts.update(host=host, port=port, dbname=urllib.parse.unquote(url.path.lstrip("/")))
        parts.update({k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items() if k in
                      ("user", "password", "host", "port", "dbname")})
    else:
        for key, value in re.findall(r"(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", dsn):
            parts[key] = value[1:-1] if value.startswith("'") else value
    env = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "dbname": "PGDATABASE", "password": "PGPASSWORD"}
    for key, name in env.items():
        if not parts.get(key):
            parts[key] = os.environ.get(name, "")
    parts["host"] = parts["host"] or "localhost"
    parts["port"] = parts["port"] or "5432"
    parts["user"] = parts["user"] or _os_user()
    parts["dbname"] = parts["dbname"] or parts["user"]
    return parts


def with_defaults(dsn: str) -> str:
    """The DSN with a connect timeout and TCP keepalives (a vanished server fails the read instead of hanging)."""
    present = set(re.findall(r"(\w+)=", dsn))
    extra = {k: v for k, v in DEFAULTS.items() if k not in present and f"PG{k.upper()}" not in os.environ}
    if not dsn or re.match(r"postgres(ql)?://", dsn):
        base = dsn or "postgresql://"
        return base + ("&" if "?" in base else "?") + urllib.parse.urlencode(extra) if extra else base
    return dsn + "".join(f" {k}={v}" for k, v in extra.items())


def _os_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "?"
