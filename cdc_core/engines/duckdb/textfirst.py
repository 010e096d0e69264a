"""Two CSV files compared as text first: only the rows whose text changed are typed.

Under the typing law (`types`) a typed value prints back as exactly the text it was read from, so two values of a
column are equal exactly when their texts are: a row whose every field reads the same in both files is unchanged,
whatever the types. So a diff of two CSV files joins them by key on their text, in one pass over each (the same
job done by hand), and keeps the candidates: the rows in one file only, and the rows whose text differs in a
column the current file has. Only the candidates are typed, by the plans a snapshot of the whole file would get
(`rules.csv_plans`: each column's type guessed from its smallest and largest value over the whole file, in the one
scan that also counts its rows; the current file keeps the previous file's types while its values fit them), and
each of their values is checked by the law: one that does not print back widens its column, as in a snapshot.
The typed candidates then go through the one comparison (`compare`): the date field compares as an instant
(`2025-01-01` and `2025-01-01 00:00:00` are one), types, counts and warnings come out as on typed snapshots. The
rows of the whole files keep the key check exact: a duplicate key among unchanged rows breaks
rows(previous) − D = rows(current) − I, and the whole file is then searched for it.

What no change row carries is not typed, so it is not checked either: a value of an unchanged row (the same text
on both sides) never widens a column or refuses a file here. A snapshot, which is stored whole, checks them all.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import duckdb

from ...config import TableConfig
from ...types import Column
from .. import csvfile
from ..changeset import Side, check_side
from ..rules import is_parquet, snapshot_of
from .connection import literal, quote
from .snapshot import csv_plans_of, csv_relation, write_plans


def is_csv_pair(previous: object, current: object) -> bool:
    """Whether both inputs are CSV files (plain or gzipped), which this comparison takes."""
    return all(isinstance(v, str | Path) and Path(v).is_file() and not is_parquet(Path(v))
               for v in (previous, current))


class _File:
    """One CSV input: its table (named after the file), header and text relation."""

    def __init__(self, path: Path, csv: TableConfig, side: str):
        self.path, self.side = path, side
        self.table = replace(csv, name=path.stem)
        self.header = csvfile.read_header(path, self.table)
        self.relation = csv_relation(path, self.table, self.header)


def open_pair(con, previous: Path, current: Path, csv: TableConfig, temps) -> tuple[Side, Side, dict[str, str]]:
    """The typed candidates of both files as the comparison's two sides (with the whole files' rows), and the
    columns the candidates widened (column → the line that says so)."""
    prev, cur = _File(previous, csv, "previous"), _File(current, csv, "current")
    try:
        candidates = _candidates(con, prev, cur, csv.pk, temps.name("TABLE", "candidates"))
    except duckdb.Error as exc:
        raise _unreadable(con, (prev, cur), exc) from None
    widened: dict[str, str] = {}
    before: dict[str, Column] = {}
    sides = []
    for number, f in enumerate((prev, cur)):
        try:
            plans, rows = csv_plans_of(con, f.relation, f.table, f.header, before, count=True)
        except duckdb.Error as exc:
            raise csvfile.explain(exc, f.path, f.table, f.header) from None
        mine = "p" if number == 0 else "c"
        text = ", ".join(f"{mine}{i} AS {quote(name)}" for i, name in enumerate(f.header))
        relation = f"(SELECT {text} FROM {candidates} WHERE __{mine})"
        out = temps.file(f"{f.side}.parquet")
        at = csvfile.where(f.path, f.table)
        _, widening = write_plans(con, relation, plans, at, out, "uncompressed")
        snapshot = snapshot_of(f.table, out, rows or 0, plans, widening, {})
        widened.update(snapshot.widenings(lasting=False))
        before = {c: Column(c, t, snapshot.layouts.get(c)) for c, t in snapshot.columns.items()}
        sides.append(Side(data=f"read_parquet({literal(str(out))})", columns=dict(snapshot.columns),
                          rows=rows or 0, label=str(f.path), layouts=dict(snapshot.layouts), whole=f.relation))
        check_side(str(f.path), snapshot.columns, csv.pk, csv.date_field)
    return sides[0], sides[1], widened


def _candidates(con, prev: _File, cur: _File, key: tuple[str, ...], name: str) -> str:
    """A temporary table of the rows whose text changed: `__p`/`__c` (the row is in that file) and each file's
    fields by position (`p0`…, `c0`…), from one FULL OUTER JOIN of the two files on the key's text. Inside the SQL
    every column goes by its position, so no file's names can clash with another's or with the markers."""
    p_at = {col: i for i, col in enumerate(prev.header)}
    c_at = {col: i for i, col in enumerate(cur.header)}
    differs = [(f"p.p{p_at[col]} IS DISTINCT FROM c.c{i}" if col in p_at else f"c.c{i} IS NOT NULL")
               for col, i in c_at.items() if col not in key]
    on = " AND ".join(f"p.p{p_at[k]} = c.c{c_at[k]}" for k in key)

    def side(f: _File, mine: str) -> str:
        fields = ", ".join(f"{quote(col)} AS {mine}{i}" for i, col in enumerate(f.header))
        return f"(SELECT true AS __{mine}, {fields} FROM {f.relation})"

    fields = [*(f"p.p{i}" for i in range(len(prev.header))), *(f"c.c{i}" for i in range(len(cur.header)))]
    con.execute(f"""
        CREATE TEMP TABLE {name} AS
        SELECT p.__p IS NOT NULL AS __p, c.__c IS NOT NULL AS __c, {', '.join(fields)}
        FROM {side(prev, 'p')} p FULL OUTER JOIN {side(cur, 'c')} c ON {on}
        WHERE p.__p IS NULL OR c.__c IS NULL OR {' OR '.join(differs) or 'false'}""")
    return name


def _unreadable(con, files: tuple[_File, _File], exc: duckdb.Error) -> Exception:
    """The one line for the file the join could not read (each read alone to find it), else the error itself."""
    for f in files:
        try:
            con.execute(f"SELECT count(*) FROM {f.relation}").fetchall()
        except duckdb.Error as alone:
            return csvfile.explain(alone, f.path, f.table, f.header)
    return exc
