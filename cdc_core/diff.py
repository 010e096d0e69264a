"""The diff: previous snapshot vs current snapshot by primary key, on DuckDB.

`I`: key only in current (current row). `D`: key only in previous (the full previous row). `U`: key in both and
- `detect="content"`: a non-key column of the current snapshot differs, NULL-safe (`IS DISTINCT FROM`);
- `detect="date_field"`: the date field is later in current (the seed's rule); rows whose content changed without
  a date bump, and rows whose date went backwards, are counted as warnings (in both modes).
Keys compare as strings; the date field compares as a UTC instant; columns whose type drifted compare on a common
type; columns added or removed are carried (NULL on the side that lacks them) and reported. Replaying the change
set onto `previous` gives `current`.

One FULL OUTER JOIN does the work; only changed rows are kept. Duplicate and NULL keys are caught from its result
at no extra pass: NULL and unmatched duplicate keys show up as repeated or empty keys among the change rows, and
matched duplicates break `rows(previous) - D = rows(current) - I`. (Identical duplicate rows present equally often
in both inputs change nothing and are not reported; the pipeline's snapshot loader refuses any duplicate key.)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from .config import TableConfig
from .engine import connect, literal, quote
from .errors import InputError
from .snapshot import check_keys, read_csv_typed

OPS = ("I", "U", "D")
NUMERIC = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
           "UHUGEINT", "FLOAT", "DOUBLE"}
TEMPORAL = {"DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S"}
TZ = "TIMESTAMP WITH TIME ZONE"
_names = itertools.count()
Input = pa.Table | str | Path


@dataclass
class ChangeSet:
    """The change rows (`op` + the row's columns, ordered by key) and what the diff noticed on the way."""

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

    @property
    def schema_changed(self) -> bool:
        return bool(self.added_columns or self.removed_columns or self.type_changes)

    def __bool__(self) -> bool:
        return self.total > 0


@dataclass
class _Side:
    """One input as a DuckDB relation, with its columns, row count and a label for messages."""

    relation: str
    columns: dict[str, str]
    rows: int
    label: str


def diff(previous: Input, current: Input, key: str | list[str] | tuple[str, ...], *, date_field: str | None = None,
         detect: str = "content", sep: str = ",", con: duckdb.DuckDBPyConnection | None = None) -> ChangeSet:
    """Compare two snapshots by `key` and return the change set.

    `previous` and `current` are Arrow tables or paths to Parquet or CSV files (CSV read with `sep`, keys as text,
    `date_field` parsed as a UTC timestamp).
    """
    key = (key,) if isinstance(key, str) else tuple(key)
    if detect not in ("content", "date_field"):
        raise ValueError(f"detect must be 'content' or 'date_field', not {detect!r}")
    if detect == "date_field" and not date_field:
        raise ValueError("detect='date_field' needs a date_field")
    own = con is None
    con = con or connect()
    temps: list[str] = []
    registered: set[str] = set()
    try:
        prev = _open(con, previous, "previous", key, date_field, sep, temps, registered)
        cur = _open(con, current, "current", key, date_field, sep, temps, registered)
        return _diff(con, prev, cur, key, date_field, detect, temps)
    finally:
        for name in temps:
            if name in registered:
                con.unregister(name)
            else:
                con.execute(f"DROP TABLE IF EXISTS {name}")
        if own:
            con.close()


def _open(con, value: Input, side: str, key: tuple[str, ...], date_field: str | None, sep: str,
          temps: list[str], registered: set[str]) -> _Side:
    name = f"__cdc_{side}_{next(_names)}"
    temps.append(name)
    if isinstance(value, pa.Table):
        con.register(name, value)
        registered.add(name)
        label, relation, rows = f"the {side} table", name, value.num_rows
    else:
        path = Path(value)
        if not path.is_file():
            raise InputError(f"The {side} snapshot {path} does not exist — check the path")
        label = str(path)
        if _is_parquet(path):
            relation = f"read_parquet({literal(str(path))})"
        else:
            table = TableConfig(name=path.stem, pk=key, date_field=date_field, sep=sep)
            read_csv_typed(con, path, table, lambda select: f"CREATE TEMP TABLE {name} AS {select}")
            relation = name
        rows = con.execute(f"SELECT count(*) FROM {relation}").fetchall()[0][0]
    columns = {row[0]: row[1] for row in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()}
    for col in key:
        if col not in columns:
            raise InputError(f'{label[0].upper()}{label[1:]} has no key column "{col}" (columns: '
                             f'{", ".join(columns)}) — fix the key')
    if date_field and date_field not in columns:
        raise InputError(f'{label[0].upper()}{label[1:]} has no date field "{date_field}" — fix the date field')
    if date_field and columns[date_field] not in TEMPORAL | {"VARCHAR", "NULL"}:
        raise InputError(f'Date field "{date_field}" of {label} is {columns[date_field]}, not a date — name a date '
                         "or timestamp column as the date field")
    return _Side(relation=relation, columns=columns, rows=rows, label=label)


def _is_parquet(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"PAR1"


def _diff(con, prev: _Side, cur: _Side, key: tuple[str, ...], date_field: str | None, detect: str,
          temps: list[str]) -> ChangeSet:
    result = ChangeSet(rows=pa.table({}), key=key)
    p_cols, c_cols = prev.columns, cur.columns
    result.added_columns = [c for c in c_cols if c not in p_cols]
    result.removed_columns = [c for c in p_cols if c not in c_cols]
    columns = list(c_cols) + result.removed_columns
    types = {}
    for col in columns:
        p_type, c_type = p_cols.get(col), c_cols.get(col)
        if col in key:
            types[col] = "VARCHAR"
        elif col == date_field:
            types[col] = p_type if p_type == c_type and p_type in TEMPORAL else TZ
        else:
            types[col] = _common_type(p_type or c_type, c_type or p_type)
            if p_type and c_type and p_type != c_type and "NULL" not in (p_type, c_type):
                result.type_changes[col] = (p_type, c_type)

    def side(s: _Side) -> str:
        """Every column of either input, cast once to the type both sides compare on, plus a row marker."""
        out = ["true AS __cdc_side"]
        for col in columns:
            have = s.columns.get(col)
            value = quote(col) if have == types[col] else f"CAST({quote(col) if have else 'NULL'} AS {types[col]})"
            out.append(f"{value} AS {quote(col)}")
        return ", ".join(out)

    values = [c for c in columns if c not in key]
    changed = " OR ".join(f"p.{quote(c)} IS DISTINCT FROM c.{quote(c)}" for c in values if c in c_cols) or "false"
    if date_field:
        d = quote(date_field)
        bumped, backwards = f"c.{d} > p.{d}", f"c.{d} < p.{d}"
    else:
        bumped = backwards = "false"
    select = ["CASE WHEN p.__cdc_side IS NULL THEN 'I' WHEN c.__cdc_side IS NULL THEN 'D' ELSE 'U' END AS op"] + [
        f"COALESCE(c.{quote(col)}, p.{quote(col)}) AS {quote(col)}" if col in key else
        f"CASE WHEN c.__cdc_side THEN c.{quote(col)} ELSE p.{quote(col)} END AS {quote(col)}" for col in columns]
    select += [f"({changed}) AS __cdc_changed", f"COALESCE({bumped}, false) AS __cdc_bumped",
               f"COALESCE({backwards}, false) AS __cdc_backwards"]

    on = " AND ".join(f"p.{quote(k)} = c.{quote(k)}" for k in key)
    work = f"__cdc_diff_{next(_names)}"
    temps.append(work)
    try:
        con.execute(f"""
            CREATE TEMP TABLE {work} AS
            SELECT * FROM (
                SELECT {', '.join(select)}
                FROM (SELECT {side(prev)} FROM {prev.relation}) p
                FULL OUTER JOIN (SELECT {side(cur)} FROM {cur.relation}) c ON {on}
            ) WHERE op <> 'U' OR __cdc_changed OR __cdc_bumped OR __cdc_backwards""")
    except duckdb.ConversionException as exc:
        raise InputError(f"{prev.label} and {cur.label} cannot be compared ({str(exc).splitlines()[0]}) — check "
                         "the date field and the column types") from None
    is_update = "__cdc_changed" if detect == "content" else "__cdc_bumped"
    stats = con.execute(f"""SELECT count(*) FILTER (WHERE op = 'I'), count(*) FILTER (WHERE op = 'D'),
               count(*) FILTER (WHERE op = 'U' AND {is_update}),
               count(*) FILTER (WHERE op = 'U' AND __cdc_changed AND NOT __cdc_bumped AND NOT __cdc_backwards),
               count(*) FILTER (WHERE op = 'U' AND __cdc_backwards) FROM {work}""").fetchall()[0]
    result.counts = {"I": stats[0], "U": stats[2], "D": stats[1]}
    _check_keys(con, work, prev, cur, key, inserted=stats[0], deleted=stats[1])
    out_cols = ", ".join(["op"] + [quote(c) for c in columns])
    order = ", ".join(quote(k) for k in key)
    result.rows = con.sql(f"SELECT {out_cols} FROM {work} WHERE op <> 'U' OR {is_update} "
                          f"ORDER BY {order}").to_arrow_table()
    _warn(result, date_field, detect, unbumped=stats[3], backwards=stats[4])
    return result


def _check_keys(con, work: str, prev: _Side, cur: _Side, key: tuple[str, ...], *, inserted: int,
                deleted: int) -> None:
    """Raise `InputError` for NULL or duplicate keys in either input, naming the input, a count and examples."""
    keys = ", ".join(quote(k) for k in key)
    suspicious = con.execute(f"""SELECT count(*) FROM (SELECT {keys} FROM {work} GROUP BY ALL
                                 HAVING count(*) > 1 OR {' OR '.join(f'{quote(k)} IS NULL' for k in key)})""")
    if suspicious.fetchall()[0][0] or prev.rows - deleted != cur.rows - inserted:
        for side in (prev, cur):  # slow path, only for bad input: find which input, how many, examples
            check_keys(con, side.relation, key, side.label[0].upper() + side.label[1:])
        raise InputError(f"{prev.label} or {cur.label} has duplicate keys ({', '.join(key)}) — a key must "
                         "identify one row")


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


def _common_type(a: str, b: str) -> str:
    if a == b or b == "NULL":
        return a
    if a == "NULL":
        return b
    if a in NUMERIC and b in NUMERIC:
        return "DOUBLE"
    if a in TEMPORAL and b in TEMPORAL:
        return TZ
    return "VARCHAR"

