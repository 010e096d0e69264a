"""The diff: previous snapshot vs current snapshot by primary key, on DuckDB.

`I`: key only in current (current row). `D`: key only in previous (the full previous row). `U`: key in both and
- `detect="content"`: a non-key column of the current snapshot differs, NULL-safe (`IS DISTINCT FROM`);
- `detect="date_field"`: the date field is later in current (the seed's rule); rows whose content changed without
  a date bump, and rows whose date went backwards, are counted as warnings.
Keys compare as strings; columns whose type drifted compare on a common type; columns added or removed are carried
(NULL on the side that lacks them) and reported. Replaying the change set onto `previous` gives `current`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from .engine import connect, literal, quote
from .errors import InputError

OPS = ("I", "U", "D")
NUMERIC = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
           "UHUGEINT", "FLOAT", "DOUBLE"}
TEMPORAL = {"DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S"}
_names = itertools.count()


@dataclass
class ChangeSet:
    """The change rows (`op` + the row's columns) and what the diff noticed on the way."""

    rows: pa.Table
    key: tuple[str, ...]
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OPS, 0))
    added_columns: list[str] = field(default_factory=list)
    removed_columns: list[str] = field(default_factory=list)
    type_changes: dict[str, tuple[str, str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __bool__(self) -> bool:
        return self.total > 0


Input = pa.Table | str | Path


def diff(previous: Input, current: Input, key: str | list[str] | tuple[str, ...], *, date_field: str | None = None,
         detect: str = "content", con: duckdb.DuckDBPyConnection | None = None) -> ChangeSet:
    """Compare two snapshots (Arrow tables or Parquet files) by `key` and return the change set."""
    key = (key,) if isinstance(key, str) else tuple(key)
    if detect not in ("content", "date_field"):
        raise ValueError(f"detect must be 'content' or 'date_field', not {detect!r}")
    if detect == "date_field" and not date_field:
        raise ValueError("detect='date_field' needs a date_field")
    con = con or connect()
    prev, cur = _relation(con, previous, "previous"), _relation(con, current, "current")
    p_cols, c_cols = _columns(con, prev), _columns(con, cur)
    for side, cols in (("previous", p_cols), ("current", c_cols)):
        missing = [k for k in key if k not in cols]
        if missing:
            raise InputError(f'The {side} snapshot has no key column "{missing[0]}" (columns: {", ".join(cols)}) '
                             "— fix the key")
    if date_field and (date_field not in p_cols or date_field not in c_cols):
        raise InputError(f'Date field "{date_field}" is missing from the '
                         f'{"previous" if date_field not in p_cols else "current"} snapshot — fix the date field')
    result = ChangeSet(rows=pa.table({}), key=key)
    result.added_columns = [c for c in c_cols if c not in p_cols]
    result.removed_columns = [c for c in p_cols if c not in c_cols]
    columns = list(c_cols) + result.removed_columns
    p_exprs, c_exprs = {}, {}
    for col in columns:
        p_type, c_type = p_cols.get(col), c_cols.get(col)
        if col in key:
            p_exprs[col] = c_exprs[col] = None
            continue
        common = _common_type(p_type or c_type, c_type or p_type)
        if p_type and c_type and p_type != c_type and "NULL" not in (p_type, c_type):
            result.type_changes[col] = (p_type, c_type)
        p_exprs[col] = _cast(f"p.{quote(col)}", p_type, common) if p_type else f"CAST(NULL AS {common})"
        c_exprs[col] = _cast(f"c.{quote(col)}", c_type, common) if c_type else f"CAST(NULL AS {common})"

    changed = " OR ".join(f"{p_exprs[c]} IS DISTINCT FROM {c_exprs[c]}" for c in c_cols if c not in key) or "false"
    if date_field:
        pd_, cd_ = f"p.{quote(date_field)}", f"c.{quote(date_field)}"
        bumped, backwards = f"({cd_} > {pd_})", f"({cd_} < {pd_})"
    else:
        bumped = backwards = "false"
    on = " AND ".join(f"p.{quote(k)} = c.{quote(k)}" for k in key)
    select = ["CASE WHEN p.__cdc_side IS NULL THEN 'I' WHEN c.__cdc_side IS NULL THEN 'D' ELSE 'U' END AS op"]
    for col in columns:
        if col in key:
            select.append(f"COALESCE(c.{quote(col)}, p.{quote(col)}) AS {quote(col)}")
        else:
            select.append(f"CASE WHEN c.__cdc_side THEN {c_exprs[col]} ELSE {p_exprs[col]} END AS {quote(col)}")
    select += [f"({changed}) AS __cdc_changed", f"COALESCE({bumped}, false) AS __cdc_bumped",
               f"COALESCE({backwards}, false) AS __cdc_backwards"]

    def side(relation: str, cols: dict[str, str]) -> str:  # keys as text, plus a marker that the row exists
        return ", ".join([f"CAST({quote(k)} AS VARCHAR) AS {quote(k)}" for k in key] + ["true AS __cdc_side"]
                         + [quote(c) for c in cols if c not in key])

    work = f"__cdc_diff_{next(_names)}"
    con.execute(f"""
        CREATE TEMP TABLE {work} AS
        SELECT * FROM (
            SELECT {', '.join(select)}
            FROM (SELECT {side(prev, p_cols)} FROM {prev}) p
            FULL OUTER JOIN (SELECT {side(cur, c_cols)} FROM {cur}) c ON {on}
        ) WHERE op <> 'U' OR __cdc_changed OR __cdc_bumped OR __cdc_backwards""")
    try:
        is_update = "__cdc_changed" if detect == "content" else "__cdc_bumped"
        out_cols = ", ".join(["op"] + [quote(c) for c in columns])
        order = ", ".join(quote(k) for k in key)
        result.rows = con.sql(f"SELECT {out_cols} FROM {work} WHERE op <> 'U' OR {is_update} "
                              f"ORDER BY {order}").to_arrow_table()
        stats = con.execute(f"""SELECT count(*) FILTER (WHERE op = 'I'), count(*) FILTER (WHERE op = 'D'),
                   count(*) FILTER (WHERE op = 'U' AND {is_update}),
                   count(*) FILTER (WHERE op = 'U' AND __cdc_changed AND NOT __cdc_bumped AND NOT __cdc_backwards),
                   count(*) FILTER (WHERE op = 'U' AND __cdc_backwards) FROM {work}""").fetchone()
    finally:
        con.execute(f"DROP TABLE IF EXISTS {work}")
    result.counts = {"I": stats[0], "U": stats[2], "D": stats[1]}
    _warn(result, date_field, detect, unbumped=stats[3], backwards=stats[4])
    return result


def _warn(result: ChangeSet, date_field: str | None, detect: str, *, unbumped: int, backwards: int) -> None:
    if date_field and unbumped:
        verb = "not captured as updates" if detect == "date_field" else "captured as updates"
        result.warnings.append(f'{unbumped} row(s) changed without a later "{date_field}" ({verb})')
    if date_field and backwards:
        result.warnings.append(f'{backwards} row(s) have an earlier "{date_field}" than before')
    if result.added_columns:
        result.warnings.append(f"column(s) added: {', '.join(result.added_columns)}")
    if result.removed_columns:
        result.warnings.append(f"column(s) removed: {', '.join(result.removed_columns)}")
    for col, (old, new) in result.type_changes.items():
        result.warnings.append(f'column "{col}" changed type {old} → {new}')


def _relation(con: duckdb.DuckDBPyConnection, value: Input, side: str) -> str:
    if isinstance(value, pa.Table):
        name = f"__cdc_{side}_{next(_names)}"
        con.register(name, value)
        return name
    path = Path(value)
    if not path.is_file():
        raise InputError(f"The {side} snapshot {path} does not exist — check the path")
    return f"read_parquet({literal(str(path))})"


def _columns(con: duckdb.DuckDBPyConnection, relation: str) -> dict[str, str]:
    return {row[0]: row[1] for row in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()}


def _common_type(a: str, b: str) -> str:
    if a == b or b == "NULL":
        return a
    if a == "NULL":
        return b
    if a in NUMERIC and b in NUMERIC:
        return "DOUBLE"
    if a in TEMPORAL and b in TEMPORAL:
        return "TIMESTAMP WITH TIME ZONE"
    return "VARCHAR"


def _cast(expr: str, have: str, want: str) -> str:
    return expr if have == want else f"CAST({expr} AS {want})"
