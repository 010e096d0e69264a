"""The `guards` blocks (top level: defaults for every table; per table: overrides): when a capture is held."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from ..errors import ConfigError
from .fields import _check_keys

GUARD_KEYS = {"max_delete_ratio", "max_change_ratio", "min_rows", "window"}


@dataclass(frozen=True)
class Guards:
    """Limits a capture must stay within to be published without a person saying yes (None: no limit).

    `max_delete_ratio`: deleted rows / the previous capture's rows (default 0.5: a capture that deletes more than
    half the table is held); `max_change_ratio`: inserted + updated + deleted rows / the previous rows;
    `min_rows`: the fewest rows the new snapshot may have. The first capture of a table is never held.
    `window`: `max_delete_ratio` also holds a capture that leaves fewer rows than (1 - the ratio) × the most rows
    of the table's last `window` captures since the last one a person accepted (default 10: 1,000 → 501 → 251
    rows is held at 251), so a mass deletion spread over runs is seen too.
    """

    max_delete_ratio: float | None = 0.5
    max_change_ratio: float | None = None
    min_rows: int | None = None
    window: int | None = 10


def _guards(raw: Any, where: str, defaults: Guards = Guards()) -> Guards:
    if raw is None:
        return defaults
    if not isinstance(raw, dict):
        raise ConfigError(f'Config key "{where}" must be an object like {{"max_delete_ratio": 0.2, "min_rows": 100}}')
    _check_keys(raw, GUARD_KEYS, f"{where}.")
    values = {f.name: getattr(defaults, f.name) for f in fields(Guards)}
    for name, value in raw.items():
        ok = value is None or (not isinstance(value, bool) and isinstance(value, int | float) and value >= 0)
        if name in ("min_rows", "window"):
            ok = ok and (value is None or (float(value).is_integer() and (name == "min_rows" or value >= 1)))
        if name == "max_delete_ratio":  # deleted rows / the previous rows: 1 is all of them
            ok = ok and (value is None or value <= 1)
        if not ok:
            kind = {"min_rows": "a whole number of rows", "max_delete_ratio": "a ratio from 0 to 1, like 0.2 (20 %)",
                    "window": "a number of captures (1 or more)"}.get(name, "a ratio like 0.2 (20 %)")
            raise ConfigError(f'Config key "{where}.{name}" is {value!r} — use {kind}, or null for no limit')
        values[name] = int(value) if name in ("min_rows", "window") and value is not None else value
    return Guards(**values)


def broken(guards: Guards, *, previous_rows: int, rows: int, counts: dict[str, int],
           recent: list[int] | None = None) -> str | None:
    """The first guard a capture breaks, as the numbers that break it; None when it stays within all.

    `recent`: the rows of the table's last captures (oldest first, since the last one a person accepted), for
    the window of `max_delete_ratio`.
    """
    base = max(previous_rows, 1)
    deleted, changed = counts.get("D", 0), sum(counts.get(op, 0) for op in ("I", "U", "D"))
    if guards.max_delete_ratio is not None and deleted / base > guards.max_delete_ratio:
        return (f"{deleted:,} of {previous_rows:,} rows deleted ({deleted / base:.0%}), more than max_delete_ratio "
                f"{guards.max_delete_ratio:g}")
    window = (recent or [])[-guards.window:] if guards.window else []
    peak = max(window, default=0)
    if guards.max_delete_ratio is not None and peak and (peak - rows) / peak > guards.max_delete_ratio:
        return (f"{rows:,} rows left of the {peak:,} the table had within its last {len(window)} captures "
                f"({(peak - rows) / peak:.0%} gone), more than max_delete_ratio {guards.max_delete_ratio:g} (window "
                f"{guards.window})")
    if guards.max_change_ratio is not None and changed / base > guards.max_change_ratio:
        return (f"{changed:,} rows changed of {previous_rows:,} ({changed / base:.0%}), more than max_change_ratio "
                f"{guards.max_change_ratio:g}")
    if guards.min_rows is not None and rows < guards.min_rows:
        return f"{rows:,} rows, fewer than min_rows {guards.min_rows:,}"
    return None
