"""Logging for the faces: plain lines on the console, a rotating log file in `data_dir/logs/`, never a secret."""

from __future__ import annotations

import logging
import os
import sys
import time
from logging.handlers import RotatingFileHandler
from pathlib import Path

SECRET_VARIABLES = ("KAGGLE_KEY", "KAGGLE_API_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "PGPASSWORD")


def redact(text: str) -> str:
    """`text` with the value of every credential variable in the environment masked as `***`."""
    for name in SECRET_VARIABLES:
        value = os.environ.get(name, "")
        if len(value) >= 4:
            text = text.replace(value, "***")
    return text


class _RedactSecrets(logging.Filter):
    """Masks the value of any credential variable that would end up in a log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


class _Stderr(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time of the record (tests and TUIs swap it)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup_logging(data_dir: Path | None = None, *, quiet: bool = False, console: bool = True) -> Path | None:
    """Console at INFO (WARNING when quiet) plus `data_dir/logs/cdc.log` (5 MB × 5) at INFO; returns the log path."""
    logger = logging.getLogger("cdc_core")
    logger.setLevel(logging.INFO)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    redact = _RedactSecrets()
    if console:
        out = _Stderr()
        out.setLevel(logging.WARNING if quiet else logging.INFO)
        out.setFormatter(logging.Formatter("%(message)s"))
        out.addFilter(redact)
        logger.addHandler(out)
    if data_dir is None:
        return None
    path = Path(data_dir) / "logs" / "cdc.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    file = RotatingFileHandler(path, maxBytes=5_000_000, backupCount=5, encoding="utf-8")
    formatter = logging.Formatter("%(asctime)sZ %(levelname)s [%(threadName)s] %(message)s", "%Y-%m-%d %H:%M:%S")
    formatter.converter = time.gmtime
    file.setFormatter(formatter)
    file.addFilter(redact)
    logger.addHandler(file)
    return path
