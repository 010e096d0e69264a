"""Logging for the faces: plain lines on the console, a rotating log file in `data_dir/logs/`, never a secret."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable
from logging.handlers import RotatingFileHandler
from pathlib import Path

SECRET_VARIABLES = ("KAGGLE_KEY", "KAGGLE_API_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "PGPASSWORD")
_secrets: set[str] = set()


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
    """`text` with every known secret (credential variables, `add_secret`, `secrets`) masked as `***`."""
    known = {os.environ.get(name, "") for name in SECRET_VARIABLES} | _secrets | set(secrets)
    for value in sorted((v for v in known if len(v) >= 4), key=len, reverse=True):
        text = text.replace(value, "***")
    return text


class _Redacting(logging.Formatter):
    """Masks secrets in the whole formatted record: the message, the traceback and any stack text."""

    def format(self, record: logging.LogRecord) -> str:
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
                  verbose: bool = False) -> Path | None:
    """Console at INFO (WARNING when quiet, DEBUG when verbose) plus `data_dir/logs/cdc.log` (5 MB × 5) at INFO
    (DEBUG when verbose: each table's stage timings); returns the log path."""
    logger = logging.getLogger("cdc_core")
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    if console:
        out = _Stderr()
        out.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)
        out.setFormatter(_Redacting("%(message)s"))
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
