"""Checks of single config values: each error names the key and the fix."""

from __future__ import annotations

import difflib
import math
import re
from pathlib import Path
from typing import Any

from ..errors import ConfigError

MAX_SECONDS = 366 * 86400  # the longest timer, claim timeout or fetch timeout: a year (a larger one is a typo)


def _check_keys(obj: dict, allowed: set[str], where: str) -> None:
    for key in obj:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f'did you mean "{close[0]}"?' if close else f"allowed keys: {', '.join(sorted(allowed))}"
            raise ConfigError(f'Unknown config key "{where}{key}" — remove it or fix its name ({hint})')


def _optional_str(raw: Any, where: str) -> str | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise ConfigError(f'Config key "{where}" must be a column name (a string) or null')
    return raw


def _optional_text(raw: Any, where: str, example: str) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(f'Config key "{where}" is {raw!r} — use {example}, or remove the key')
    return raw.strip()


def _sep(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or len(raw) != 1:
        raise ConfigError(f'Config key "{where}" is {raw!r} — use one character, e.g. ";" or ","')
    return raw


def _quote(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or len(raw) > 1:
        raise ConfigError(f'Config key "{where}" is {raw!r} — use one character (default \'"\'), or "" for none')
    return raw


def _choice(raw: Any, allowed: tuple[str, ...], where: str) -> str:
    if raw not in allowed:
        raise ConfigError(f'Config key "{where}" is {raw!r} — use one of: {", ".join(allowed)}')
    return raw


def _bool(raw: Any, where: str) -> bool:
    if not isinstance(raw, bool):
        raise ConfigError(f'Config key "{where}" is {raw!r} — use true or false')
    return raw


def _positive_int(raw: Any, where: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise ConfigError(f'Config key "{where}" is {raw!r} — use a whole number of at least 1')
    return raw


def _seconds(raw: Any, where: str) -> float | None:
    if raw is None:
        return None
    if not _finite(raw) or not 0 < raw <= MAX_SECONDS:
        raise ConfigError(f'Config key "{where}" is {raw!r} — use a number of seconds above 0 and at most '
                          f"{MAX_SECONDS:,} (a year)")
    return float(raw)


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _duration(raw: Any, where: str) -> float | None:
    """A duration like "90d", "12h" or "52w" in seconds (None: not given)."""
    if raw is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", raw) if isinstance(raw, str) else None
    if match is None or int(match[1]) == 0:
        raise ConfigError(f'Config key "{where}" is {raw!r} — use a duration like "90d", "12h" or "52w" '
                          "(s, m, h, d, w)")
    return float(int(match[1]) * DURATION_UNITS[match[2]])


def _finite(raw: Any) -> bool:
    """A number JSON may hold that is a real number (not a boolean, NaN or ±Infinity)."""
    return not isinstance(raw, bool) and isinstance(raw, int | float) and math.isfinite(raw)


def _path(raw: Any, where: str, base_dir: Path) -> Path:
    if not isinstance(raw, str) or not raw:
        raise ConfigError(f'Config key "{where}" must be a folder path (a string)')
    path = Path(raw).expanduser()
    return path if path.is_absolute() else base_dir / path
