"""The row counts of a table's recent captures, kept in the data dir for the guards' window.

`data_dir/guards/{table}.json` lists the rows of each published capture, oldest first, since the last capture a
person accepted (`--accept-held`), which starts the list afresh. A fresh data dir starts with an empty window:
the guard then looks one capture back, as the per-capture ratio does.
"""

from __future__ import annotations

from pathlib import Path

from .jsonfile import read_json, write_json_atomic

KEEP = 1000  # more than any sane window


def _path(root: Path, table: str) -> Path:
    return Path(root) / "guards" / f"{table}.json"


def recent_rows(root: Path, table: str) -> list[int]:
    """The rows of the table's published captures since the last accepted one, oldest first."""
    data = read_json(_path(root, table)) or {}
    return [n for n in data.get("rows", []) if isinstance(n, int)]


def remember_rows(root: Path, table: str, rows: int, *, accepted: bool) -> None:
    """Add a published capture's rows; an accepted capture (a person said yes) starts the window afresh."""
    kept = [] if accepted else recent_rows(root, table)
    write_json_atomic(_path(root, table), {"rows": [*kept, rows][-KEEP:]})
