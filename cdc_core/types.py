"""Column types of the lake, and the one law they obey: a typed value's text is the text it was read from.

The lake stores seven types: `VARCHAR`, `BIGINT`, `DECIMAL(p,s)`, `DOUBLE`, `BOOLEAN`, `DATE` and
`TIMESTAMP WITH TIME ZONE` (UTC), plus `BLOB` from typed sources. A CSV column gets a type other than `VARCHAR`
only when every value of the whole file parses and prints back to exactly its own text (`text_of(parse(v)) = v`):
`007` stays text, `20.50` is `DECIMAL(18,2)`, a 23-digit id is text, `2025-01-02 10:00:00.000` is a timestamp whose
layout (`%Y-%m-%d %H:%M:%S.%g`) is recorded beside it. Because of that law, a column that stops fitting its type
widens to `VARCHAR` and compares on `text_of` of the old values: the widening alone changes no row.

Layouts of timestamp columns travel in each Parquet file's key-value metadata (`cdc_core` → `{"formats": …}`),
so every reader (diff, replay) can render an old typed value as the text it came from.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

TEXT, INT, DOUBLE, BOOL, DATE, TZ, BLOB = ("VARCHAR", "BIGINT", "DOUBLE", "BOOLEAN", "DATE",
                                           "TIMESTAMP WITH TIME ZONE", "BLOB")
LAKE_TYPES = (TEXT, INT, DOUBLE, BOOL, DATE, TZ, BLOB)
SCALAR_TYPES = frozenset(LAKE_TYPES) | {  # what older lakes (DuckDB's own guesses) may also hold
    "TINYINT", "SMALLINT", "INTEGER", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT",
    "FLOAT", "TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "TIME", "UUID", "INTERVAL", "NULL"}
DECIMAL = re.compile(r"DECIMAL\((\d{1,2}),(\d{1,2})\)")
ALIASES = {"TEXT": TEXT, "STRING": TEXT, "VARCHAR": TEXT, "INT": INT, "INTEGER": INT, "BIGINT": INT,
           "LONG": INT, "DOUBLE": DOUBLE, "FLOAT": DOUBLE, "BOOL": BOOL, "BOOLEAN": BOOL, "DATE": DATE,
           "TIMESTAMP": TZ, "TIMESTAMPTZ": TZ, "TIMESTAMP WITH TIME ZONE": TZ}
# Timestamp layouts a CSV column may have to be typed without a pinned format (ISO 8601, UTC or no zone).
LAYOUTS = tuple(f"%Y-%m-%d{sep}%H:%M{secs}{zone}" for sep in (" ", "T")
                for secs in (":%S", ":%S.%g", ":%S.%f", "") for zone in ("", "Z"))
META_KEY = "cdc_core"
# The texts a pinned column or the date field may hold: the forms every engine reads as the same value, no more.
# (DuckDB alone reads `5.9` as the BIGINT 6 and `1.005` as the DECIMAL(18,2) 1.01: a pin never rounds a value.)
_ZONE = r"( ?(Z|UTC)|[+-]\d\d(:?\d\d)?)?"
SAFE = {
    INT: r"[+-]?\d+",
    DOUBLE: r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?",
    BOOL: r"(?i:true|false|t|f|yes|no|y|n|1|0)",
    DATE: r"\d{4}-\d{1,2}-\d{1,2}",
    TZ: r"\d{4}-\d{1,2}-\d{1,2}([T ]\d{1,2}:\d{1,2}(:\d{1,2}(\.\d{1,9})?)?)?" + _ZONE,
}


def normalize(name: str) -> str | None:
    """The lake type a user or a file names (`int`, `decimal(12, 2)`, `timestamp`…), or None if it is not one."""
    upper = re.sub(r"\s+", " ", name.strip().upper())
    if upper in ALIASES:
        return ALIASES[upper]
    match = DECIMAL.fullmatch(upper.replace(" ", ""))
    if match and 0 < int(match[1]) <= 38 and int(match[2]) <= int(match[1]):
        return f"DECIMAL({int(match[1])},{int(match[2])})"
    return upper if upper in LAKE_TYPES else None


def sql_type(name: str) -> str:
    """A type name read from a file or a manifest, safe to put into SQL: only plain scalar type names pass."""
    text = " ".join(str(name).upper().split())
    match = DECIMAL.fullmatch(text.replace(" ", ""))
    if match and 0 < int(match[1]) <= 38 and int(match[2]) <= int(match[1]):
        return text.replace(" ", "")
    if text in SCALAR_TYPES:
        return text
    raise ValueError(f"{name!r} is not a column type cdc_core writes")


def safe_form(kind: str) -> str | None:
    """The regex (anchored) of the texts every engine reads alike as `kind` (`SAFE`); None for text."""
    match = DECIMAL.fullmatch(kind.replace(" ", ""))
    if match:
        scale = int(match[2])
        return rf"^[+-]?\d+(\.\d{{1,{scale}}})?\z" if scale else r"^[+-]?\d+\z"
    return rf"^(?:{SAFE[kind]})\z" if kind in SAFE else None


def lake_type_of(duckdb_type: str) -> str:
    """The lake type a typed input column (Parquet, a database) is stored as."""
    kind = duckdb_type.upper()
    if kind in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER"):
        return INT
    if kind in ("UBIGINT", "HUGEINT", "UHUGEINT"):
        return "DECIMAL(38,0)"
    if kind in ("FLOAT", "DOUBLE"):
        return DOUBLE
    if kind.startswith("DECIMAL"):
        return kind.replace(" ", "")
    if kind.startswith("TIMESTAMP"):
        return TZ
    if kind in (BOOL, DATE, BLOB):
        return kind
    return TEXT  # VARCHAR, TIME, UUID, JSON, INTERVAL, lists and structs: as text


def _shape(layout: str) -> str:
    """A layout's text with every digit as 0 (`%Y-%m-%d` → `0000-00-00`)."""
    for code, digits in (("%Y", "0000"), ("%m", "00"), ("%d", "00"), ("%H", "00"), ("%M", "00"), ("%S", "00"),
                         ("%g", "000"), ("%f", "000000")):
        layout = layout.replace(code, digits)
    return layout


def layout_of(sample: str) -> str | None:
    """The ISO layout (of `LAYOUTS`) a timestamp text is written in, if any."""
    shape = re.sub(r"\d", "0", sample)
    return next((layout for layout in LAYOUTS if _shape(layout) == shape), None)


_INT = re.compile(r"-?(0|[1-9]\d*)")
_DECIMAL = re.compile(r"-?(0|[1-9]\d*)\.(\d+)")
_DATE = re.compile(r"\d{4}-\d\d-\d\d")


def guess(low: str | None, high: str | None, width: int | None) -> tuple[str, str | None]:
    """The type (and layout) a text column may have, judged from its smallest and largest value and its width.

    Only a guess: the write checks every value (`exact`) and widens the column to text if one does not fit.
    Text order puts leading zeros, signs and letters apart from plain digits, so most misfits show at the ends.
    """
    if low is None or high is None:
        return TEXT, None
    ends = (low, high)
    if all(_INT.fullmatch(v) for v in ends) and all(-(2 ** 63) <= int(v) < 2 ** 63 for v in ends):
        return INT, None
    decimals = [_DECIMAL.fullmatch(v) for v in ends]
    if decimals[0] and decimals[1] and len(decimals[0][2]) == len(decimals[1][2]) and (width or 0) <= 39:
        return f"DECIMAL({18 if (width or 0) <= 19 else 38},{len(decimals[0][2])})", None
    if set(ends) <= {"true", "false"}:
        return BOOL, None
    if all(_DATE.fullmatch(v) for v in ends):
        return DATE, None
    layout = layout_of(low)
    return (TZ, layout) if layout is not None and layout_of(high) == layout else (TEXT, None)


@dataclass(frozen=True)
class Column:
    """One column of a snapshot: its exact name, lake type, and (timestamps) the layout of its text."""

    name: str
    type: str
    layout: str | None = None


def read_layouts(path: Path) -> dict[str, str]:
    """The timestamp layouts a Parquet file written by cdc_core records in its key-value metadata."""
    import pyarrow.parquet as pq

    return layouts_of((pq.read_metadata(path).metadata or {}).get(META_KEY.encode()))


def layouts_of(raw: bytes | None) -> dict[str, str]:
    """The timestamp layouts in the value of a Parquet file's `cdc_core` key-value metadata (None: none)."""
    if not raw:
        return {}
    try:
        formats = json.loads(raw).get("formats", {})
    except (ValueError, AttributeError):
        return {}
    return {str(k): str(v) for k, v in formats.items() if isinstance(v, str)} if isinstance(formats, dict) else {}


def layouts_metadata(layouts: dict[str, str]) -> dict[bytes, bytes] | None:
    """The same record as Arrow schema metadata (for files pyarrow writes)."""
    return {META_KEY.encode(): json.dumps({"formats": layouts}, sort_keys=True).encode()} if layouts else None
