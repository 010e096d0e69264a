"""Logging for the faces: plain lines on the console, a rotating log file in `data_dir/logs/`, never a secret."""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Iterable
from logging.handlers import RotatingFileHandler
from pathlib import Path

SECRET_VARIABLES = ("KAGGLE_KEY", "KAGGLE_API_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "PGPASSWORD")
_secrets: set[str] = set()
# query parameters whose values are credentials, by how their names end: token=, access_token=, sig=, jwt=,
# signature=, key=, apikey=, api_key=, X-Amz-Signature=, X-Amz-Credential=, X-Amz-Security-Token=, password=, … (not
# X-Amz-SignedHeaders=, whose value is no secret and helps to read a presigned URL)
SECRET_PARAMETER = re.compile(r"(token|sig|signature|key|secret|password|passwd|pwd|credential|auth|sessionid|jwt)$",
                              re.IGNORECASE)
_QUERY_VALUE = re.compile(r"([?&;]([^=&;#?\s]+)=)([^&;#\s]*)")  # 1: "?name=" or "&name=", 2: name, 3: value
# a URL's user information: everything between "://" and the last "@" of the authority (a password may hold an
# unencoded "@"); the authority ends at the first "/", "?", "#" or blank after "://"
_USERINFO = re.compile(r"(://)([^/?#\s]*)@")
# a keyword DSN's password: a quoted value, or everything up to the next "keyword=" (a value with an unquoted blank
# is ambiguous and refused by the config check; masking it whole is the safe side)
_DSN_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|.*?(?=\s+\w+\s*=|$))", re.IGNORECASE | re.MULTILINE)


def add_secret(value: str | None) -> None:
    """Remember a secret read from somewhere else than the environment (kaggle.json, an AWS credentials file, a
    password in a URL) so that it is masked wherever it would be printed or logged."""
    if value and len(value) >= 4:
        _secrets.add(value)


def first_line(exc: BaseException) -> str:
    """An exception's first line (its type when it says nothing), secrets masked: the part of a library's error
    that goes into one of ours."""
    text = str(exc).strip()
    return redact(text.splitlines()[0] if text else type(exc).__name__)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every known secret (credential variables, `add_secret`, `secrets`) masked as `***`, and every
    URL or DSN in it masked by structure (`mask`)."""
    known = {os.environ.get(name, "") for name in SECRET_VARIABLES} | _secrets | set(secrets)
    for value in sorted((v for v in known if len(v) >= 4), key=len, reverse=True):
        text = text.replace(value, "***")
    return mask(text)


def mask(text: str) -> str:
    """A URL, a DSN or a text holding them with every credential shown as `***`, by structure: a URL's password
    (`https://user:***@host/x.csv`, however many "@" it holds), the values of secret-looking query parameters
    (`?token=***&format=csv`, `apikey=`, `jwt=`, `X-Amz-Signature=` …) and a keyword DSN's `password=***`.
    The one masking function for every URL-like value: catalog URIs, endpoints, DSNs, webhooks, sources."""
    text = _USERINFO.sub(lambda m: f"{m[1]}{_masked_userinfo(m[2])}@", text)
    text = _QUERY_VALUE.sub(lambda m: f"{m[1]}***" if m[3] and SECRET_PARAMETER.search(m[2]) else m[0], text)
    return _DSN_PASSWORD.sub(lambda m: f"{m[1]}***" if m[2] else m[0], text)


def _masked_userinfo(userinfo: str) -> str:
    user, colon, password = userinfo.partition(":")
    kept = not password.strip("*") or re.fullmatch(r"\$\{\w+\}", password)  # masked already, or a ${VARIABLE}
    return userinfo if not colon or kept else f"{user}:***"


def url_secrets(url: str) -> set[str]:
    """The password and the secret query values of a URL, as written and decoded (what `mask` hides)."""
    import urllib.parse

    found = {m[2].partition(":")[2] for m in _USERINFO.finditer(url)}
    found |= {m[3] for m in _QUERY_VALUE.finditer(url) if m[3] and SECRET_PARAMETER.search(m[2])}
    found |= {urllib.parse.unquote(value) for value in found}
    return {value for value in found if value}


class _Redacting(logging.Formatter):
    """Masks secrets in the whole formatted record: the message, the traceback and any stack text."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


# `extra=SUMMARISED` on a record that a face's summary repeats (a table's failure): the log file keeps it, the
# console does not print it a second time above the summary
SUMMARISED = {"summarised": True}


class _Console(logging.Formatter):
    """One line per record on the console: a traceback goes to the log file only (and no record the summary repeats
    reaches it, see `SUMMARISED`)."""

    def format(self, record: logging.LogRecord) -> str:
        record = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None, "stack_info": None})
        return redact(super().format(record))


class _Stderr(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time of the record (tests and TUIs swap it)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup_logging(data_dir: Path | None = None, *, quiet: bool = False, console: bool = True,
                  verbose: bool = False, summary: bool = False) -> Path | None:
    """Console at INFO (WARNING when quiet, DEBUG when verbose) plus `data_dir/logs/cdc.log` (5 MB × 5) at INFO
    (DEBUG when verbose: each table's stage timings); returns the log path. With `summary` (a face that prints
    each table's error in its summary, the CLI) the console leaves out what the summary repeats."""
    logger = logging.getLogger("cdc_core")
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    if console:
        out = _Stderr()
        out.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)
        out.setFormatter(_Console("%(message)s"))
        if summary:
            out.addFilter(lambda record: not getattr(record, "summarised", False))
        logger.addHandler(out)
    if data_dir is None:
        return None
    path = Path(data_dir) / "logs" / "cdc.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        file = RotatingFileHandler(path, maxBytes=5_000_000, backupCount=5, encoding="utf-8")
    except OSError as exc:
        from .errors import ConfigError

        raise ConfigError(f"Cannot write the log file {path} ({exc.strerror or exc}) — make data_dir writable for "
                          'this user, or point "data_dir" in the config at a writable folder') from None
    formatter = _Redacting("%(asctime)sZ %(levelname)s [%(threadName)s] %(message)s", "%Y-%m-%d %H:%M:%S")
    formatter.converter = time.gmtime
    file.setFormatter(formatter)
    logger.addHandler(file)
    return path
