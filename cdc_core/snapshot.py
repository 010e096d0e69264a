"""CSV → typed Parquet snapshot, with the checks that keep bad input out of the lake.

Key columns are read as strings, the date field is parsed as a UTC timestamp, other columns keep the types DuckDB
detects (timestamps as UTC). A header without the key or date column, a file that is not CSV with the table's
separator, a bad date, and NULL or duplicate keys each raise one `InputError` that says what, where and how to fix.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from .config import TableConfig
from .engine import connect, literal, quote
from .errors import InputError

EXAMPLES = 5


@dataclass(frozen=True)
class Snapshot:
    """A table's typed snapshot on disk."""

    table: str
    path: Path
    rows: int
    columns: dict[str, str]


def load_snapshot(csv_path: Path, table: TableConfig, out_path: Path, *,
                  con: duckdb.DuckDBPyConnection | None = None, compression: str = "zstd") -> Snapshot:
    """Check and convert one table's CSV file into a typed Parquet snapshot at `out_path`."""
    con = con or connect()
    csv_path, out_path = Path(csv_path), Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    target = literal(str(out_path))
    read_csv_typed(con, csv_path, table,
                   lambda select: f"COPY ({select}) TO {target} (FORMAT parquet, COMPRESSION {compression})")
    try:
        rows = check_keys(con, f"read_parquet({target})", table.pk, f'Table "{table.name}": {csv_path.name}')
    except InputError:
        out_path.unlink(missing_ok=True)
        raise
    described = con.execute(f"DESCRIBE SELECT * FROM read_parquet({target})").fetchall()
    return Snapshot(table=table.name, path=out_path, rows=rows, columns={row[0]: row[1] for row in described})


def read_csv_typed(con: duckdb.DuckDBPyConnection, csv_path: Path, table: TableConfig,
                   statement: Callable[[str], str], *, utc: bool = True) -> None:
    """Run `statement(select)`, where `select` reads the CSV typed; any read error becomes one `InputError`.

    With `utc`, every timestamp column becomes a UTC timestamp (for snapshots); without, only a date field that
    is not already a date or timestamp is parsed (enough to compare, and cheaper).
    """
    header = read_header(csv_path, table)
    where = f'Table "{table.name}": {csv_path.name}'
    try:
        con.execute(statement(_typed_select(con, csv_path, table, sample_size=20480, utc=utc)))
    except duckdb.ConversionException:
        try:  # a type guessed from the first rows failed further down: read the whole file to guess
            con.execute(statement(_typed_select(con, csv_path, table, sample_size=-1, utc=utc)))
        except duckdb.Error as exc:
            raise _explain(exc, con, csv_path, table, header, where) from None
    except duckdb.Error as exc:
        raise _explain(exc, con, csv_path, table, header, where) from None


def read_header(csv_path: Path, table: TableConfig) -> list[str]:
    """The header's column names; the key columns and the date field must be among them."""
    where = f'Table "{table.name}": {csv_path.name}'
    try:
        with open(csv_path, encoding="utf-8-sig", newline="") as f:
            line = f.readline()
    except UnicodeDecodeError:
        raise InputError(f"{where} is not UTF-8 text — re-save it as UTF-8") from None
    if not line.strip():
        raise InputError(f"{where} is empty (no header line) — the source delivered an empty file; check it")
    header = next(csv.reader([line.rstrip("\r\n")], delimiter=table.sep))
    shown = table.sep.join(header)
    if len(shown) > 120:
        shown = shown[:117] + "…"
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes:
        raise InputError(f'{where}: column "{dupes[0]}" appears twice in the header ({shown}) — '
                         "rename one of them")
    for col in table.pk:
        if col not in header:
            fix = _sep_hint(header, table) or 'fix "pk" in the config or the file'
            raise InputError(f'{where}: key column "{col}" is missing (header: {shown}) — {fix}')
    if table.date_field and table.date_field not in header:
        fix = _sep_hint(header, table) or 'fix "date_field" in the config or the file'
        raise InputError(f'{where}: date field "{table.date_field}" is missing (header: {shown}) — {fix}')
    return header


def _sep_hint(header: list[str], table: TableConfig) -> str:
    if len(header) == 1:
        for sep in (";", ",", "\t", "|"):
            if sep != table.sep and sep in header[0]:
                return f'the file looks separated by {sep!r}, not {table.sep!r}: set "sep" in the config'
    return ""


def _typed_select(con, csv_path: Path, table: TableConfig, sample_size: int, utc: bool = True) -> str:
    """SELECT over the CSV: key columns as text, the date field (and with `utc` every timestamp) as UTC."""
    types = "{" + ", ".join(f"{literal(k)}: 'VARCHAR'" for k in table.pk) + "}"
    source = (f"read_csv({literal(str(csv_path))}, delim={literal(table.sep)}, header=true, types={types}, "
              f"sample_size={sample_size}, encoding='utf-8')")
    select = []
    for name, kind, *_ in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall():
        col = quote(name)
        is_date = name == table.date_field
        if (utc and (is_date or kind.startswith("TIMESTAMP")) and kind != "TIMESTAMP WITH TIME ZONE") \
                or (is_date and kind not in ("DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE")):
            select.append(f"CAST({col} AS TIMESTAMPTZ) AS {col}")
        else:
            select.append(col)
    return f"SELECT {', '.join(select)} FROM {source}"


def _explain(exc: duckdb.Error, con, csv_path: Path, table: TableConfig, header: list[str], where: str) -> InputError:
    """Turn a DuckDB read error into one line that says what, where and how to fix."""
    text = str(exc)
    if table.date_field and ("TIMESTAMP" in text or "DATE" in text or f'"{table.date_field}"' in text):
        date = quote(table.date_field)
        try:
            bad = con.execute(
                f"SELECT DISTINCT {date} FROM read_csv({literal(str(csv_path))}, delim={literal(table.sep)}, "
                f"header=true, all_varchar=true) WHERE {date} IS NOT NULL AND TRY_CAST({date} AS TIMESTAMPTZ) "
                f"IS NULL LIMIT {EXAMPLES}").fetchall()
        except duckdb.Error:
            bad = []
        if bad:
            examples = ", ".join(repr(r[0]) for r in bad)
            return InputError(f'{where}: date field "{table.date_field}" has values that are not dates '
                              f'(e.g. {examples}) — use YYYY-MM-DD[ HH:MM:SS[.fff]] or fix "date_field" in the config')
    if "not utf-8" in text.lower() or "unicode" in text.lower():
        return InputError(f"{where} is not UTF-8 text — re-save it as UTF-8")
    line = _ragged_line(csv_path, table.sep, len(header))
    if line:
        return InputError(f"{where}: line {line[0]} has {line[1]} fields but the header has {len(header)} "
                          f'(separator {table.sep!r}) — fix that line or "sep" in the config')
    match = re.search(r"CSV Error on Line: (\d+)", text)
    first = text.splitlines()[0] if text else type(exc).__name__
    at = f" at line {match.group(1)}" if match else ""
    return InputError(f"{where} cannot be read as CSV with separator {table.sep!r}{at} ({first}) — fix the file")


def _ragged_line(csv_path: Path, sep: str, width: int) -> tuple[int, int] | None:
    """The first line whose field count differs from the header's (slow path, only after a read error)."""
    with open(csv_path, encoding="utf-8", errors="replace", newline="") as f:
        for number, row in enumerate(csv.reader(f, delimiter=sep), start=1):
            if row and len(row) != width:
                return number, len(row)
    return None


def check_keys(con, relation: str, pk: tuple[str, ...], where: str) -> int:
    """Count the rows of `relation`; raise `InputError` on NULL or duplicate keys (with up to 5 examples)."""
    keys = ", ".join(quote(c) for c in pk)
    null_any = " OR ".join(f"{quote(c)} IS NULL" for c in pk)
    rows, nulls = con.execute(f"SELECT count(*), count(*) FILTER (WHERE {null_any}) FROM {relation}").fetchall()[0]
    if nulls:
        raise InputError(f"{where}: {nulls} row(s) have an empty key ({', '.join(pk)}) — every row needs a key: "
                         'fix the file or "pk" in the config')
    dupes = con.execute(f"SELECT {keys}, count(*) AS n, count(*) OVER () AS total FROM {relation} "
                        f"GROUP BY ALL HAVING count(*) > 1 ORDER BY n DESC, {keys} LIMIT {EXAMPLES}").fetchall()
    if dupes:
        examples = ", ".join("/".join(str(v) for v in r[:len(pk)]) + f" ×{r[len(pk)]}" for r in dupes)
        raise InputError(f"{where}: {dupes[0][-1]} key value(s) appear more than once (e.g. {examples}) — "
                         'a key must identify one row: fix the file or "pk" in the config')
    return rows
