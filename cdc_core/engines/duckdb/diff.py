"""The diff: previous snapshot vs current snapshot by primary key, on DuckDB.

`I`: key only in current (current row). `D`: key only in previous (the full previous row). `U`: key in both and
- `detect="content"`: a non-key column of the current snapshot differs, NULL-safe (`IS DISTINCT FROM`);
- `detect="date_field"`: the date field is later in current (the seed's rule); rows whose content changed without
  a date bump, and rows whose date went backwards, are counted as warnings (in both modes).
Keys compare as strings; the date field compares as a UTC instant; columns whose type drifted compare on a common
type; columns added or removed are carried (NULL on the side that lacks them) and reported. Replaying the change
set onto `previous` gives `current`.

Column names are exact: inside the SQL every column goes by a positional alias, so `nome` and `Nome` (a header
whose case changed) are two columns, one removed and one added. A column that widened to text compares on the
text its old values were read from (`law.text_of`), so the widening alone changes no row.

One FULL OUTER JOIN does the work; only changed rows are kept. Duplicate and NULL keys are caught from its result
at no extra pass: NULL and unmatched duplicate keys show up as repeated or empty keys among the change rows, and
matched duplicates break `rows(previous) - D = rows(current) - I`. (Identical duplicate rows present equally often
in both inputs change nothing and are not reported; the pipeline's snapshot loader refuses any duplicate key.)
"""

from __future__ import annotations

import itertools
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from ...config import TableConfig
from ...types import Column
from ..changeset import OPS, ChangeSet, Output, Side, check_side, missing_input, not_comparable
from ..parquetmeta import file_layouts
from ..rules import file_columns, is_parquet, said_once
from . import textfirst
from .compare import compare
from .connection import connect, literal
from .snapshot import load_snapshot

if TYPE_CHECKING:
    import pyarrow as pa

    Input = pa.Table | str | Path

__all__ = ["OPS", "ChangeSet", "diff"]

_names = itertools.count()


TEMP_CODEC = "uncompressed"  # a temporary snapshot is read once, right away: compressing it only costs time


class _Temps:
    """The relations and files one diff creates, dropped when it ends."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con, self.items, self.folder = con, [], None

    def name(self, kind: str, side: str) -> str:
        name = f"__cdc_{side}_{next(_names)}"
        self.items.append((kind, name))
        return name

    def file(self, name: str) -> Path:
        if self.folder is None:
            self.folder = tempfile.TemporaryDirectory(prefix="cdc-diff-")
        return Path(self.folder.name) / name

    def drop(self) -> None:
        for kind, name in reversed(self.items):
            if kind == "arrow":
                self.con.unregister(name)
            else:
                self.con.execute(f"DROP {kind} IF EXISTS {name}")
        if self.folder is not None:
            self.folder.cleanup()


def diff(previous: Input, current: Input, key: str | list[str] | tuple[str, ...], *, date_field: str | None = None,
         detect: str = "content", sep: str = ",", quote_char: str = '"', escape_char: str | None = None,
         con: duckdb.DuckDBPyConnection | None = None,
         output: Path | None = None, constants: dict[str, str] | None = None, compression: str = "snappy",
         changed_columns: bool = False, before_image: bool = False, details: Path | None = None,
         labels: tuple[str, str] | None = None) -> ChangeSet:
    """Compare two snapshots by `key` and return the change set.

    `previous` and `current` are Arrow tables or paths to Parquet or CSV files. CSV files are typed as the
    pipeline types them (`snapshot.load_snapshot`: whole-file types, the current file keeps the previous file's
    types while it fits them), read with `sep` and RFC 4180 quoting (`quote_char=""` for none;
    `escape_char` defaults to the quote); two CSV files are compared on their text first, and only the rows whose
    text changed are typed and checked (`textfirst`).
    With `output`, the change rows go straight to that Parquet file, with the `constants` columns (name → SQL
    expression, e.g. the run id) appended to every row. `changed_columns` adds `_cdc_changed` (each U row's changed
    columns), `before_image` a `B` row with the previous values before each `U`; `details` writes each U row's key
    and changed columns to a side file. The change set always counts the updated rows per column. `labels` name the
    two inputs in messages (default: their paths).
    """
    key = (key,) if isinstance(key, str) else tuple(key)
    if detect not in ("content", "date_field"):
        raise ValueError(f"detect must be 'content' or 'date_field', not {detect!r}")
    if detect == "date_field" and not date_field:
        raise ValueError("detect='date_field' needs a date_field")
    own = con is None
    con = con or connect()
    temps = _Temps(con)
    csv = TableConfig(name="", pk=key, date_field=date_field, sep=sep, quote=quote_char,
                      escape=quote_char if escape_char is None else escape_char)
    try:
        widened: dict[str, str] = {}  # column → how the current CSV widened it (said instead of "changed type")
        if textfirst.is_csv_pair(previous, current):  # compared as text, only the changed rows typed
            prev, cur, widened = textfirst.open_pair(con, Path(previous), Path(current), csv, temps)
        else:
            prev = _open(con, previous, "previous", csv, temps, None, widened)
            cur = _open(con, current, "current", csv, temps, prev, widened)
        if labels:
            prev.label, cur.label = labels
        try:
            result = compare(con, prev, cur, key, date_field, detect,
                             Output(output, constants or {}, compression, changed_columns, before_image, details))
            result.warnings = said_once(result.warnings, widened)
            return result
        except duckdb.ConversionException as exc:
            raise not_comparable(prev.label, cur.label, str(exc).splitlines()[0]) from None
    finally:
        temps.drop()
        if own:
            con.close()


def _open(con, value: Input, side: str, csv: TableConfig, temps: _Temps, before: Side | None,
          widened: dict[str, str]) -> Side:
    layouts: dict[str, str] = {}
    if not isinstance(value, str | Path):  # an Arrow table
        relation = temps.name("arrow", side)
        con.register(relation, value)
        label, rows = f"the {side} table", value.num_rows
        described = con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
        columns = {name: row[1] for name, row in zip(value.column_names, described, strict=True)}
    else:
        path = Path(value)
        if not path.is_file():
            raise missing_input(side, path)
        label = str(path)
        if not is_parquet(path):  # typed once, the way the pipeline types it, into a temporary snapshot
            table = replace(csv, name=path.stem)
            stable = {c: Column(c, t, before.layouts.get(c)) for c, t in before.columns.items()} if before else None
            snap = load_snapshot(path, table, temps.file(f"{side}.parquet"), con=con, previous=stable,
                                 compression=TEMP_CODEC, check=False, measure=False)  # the compare finds bad keys
            widened.update(snap.widenings(lasting=False))
            path = snap.path
        relation = f"read_parquet({literal(str(path))})"
        rows = con.execute(f"SELECT count(*) FROM {relation}").fetchall()[0][0]
        columns = {name: kind for name, (_, kind) in file_columns(con, path).items()}
        layouts = file_layouts(con, path)
    check_side(label, columns, csv.pk, csv.date_field)
    return Side(data=relation, columns=columns, rows=rows, label=label, layouts=layouts)
