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
text its old values were read from (`types.text_of`), so the widening alone changes no row.

One FULL OUTER JOIN does the work; only changed rows are kept. Duplicate and NULL keys are caught from its result
at no extra pass: NULL and unmatched duplicate keys show up as repeated or empty keys among the change rows, and
matched duplicates break `rows(previous) - D = rows(current) - I`. (Identical duplicate rows present equally often
in both inputs change nothing and are not reported; the pipeline's snapshot loader refuses any duplicate key.)
"""

from __future__ import annotations

import itertools
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from .config import TableConfig
from .engine import connect, literal, quote
from .errors import InputError
from .snapshot import check_keys, load_snapshot
from .types import Column, kv_metadata, layouts_metadata, read_layouts, text_of

OPS = ("I", "U", "D")
NUMERIC = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
           "UHUGEINT", "FLOAT", "DOUBLE"}
TEMPORAL = {"DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S"}
TZ = "TIMESTAMP WITH TIME ZONE"
_names = itertools.count()
Input = pa.Table | str | Path


@dataclass
class ChangeSet:
    """The change rows (`op` + the row's columns, ordered by key) and what the diff noticed on the way.

    With `output`, the rows were written straight to that Parquet file (never held in Python) and `rows` reads
    them back only when asked. `held_back` counts the rows that changed but are not updates (`date_field` mode):
    their keys are in `held_keys` (a Parquet file beside the output), so the caller can keep them as they were.
    """

    key: tuple[str, ...]
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OPS, 0))
    added_columns: list[str] = field(default_factory=list)
    removed_columns: list[str] = field(default_factory=list)
    type_changes: dict[str, tuple[str, str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    layouts: dict[str, str] = field(default_factory=dict)  # timestamp columns → the layout of their text
    path: Path | None = None
    held_back: int = 0
    held_keys: Path | None = None
    _rows: pa.Table | None = field(default=None, repr=False)

    @property
    def rows(self) -> pa.Table:
        if self._rows is None and self.path is not None:
            self._rows = pq.read_table(self.path)
        return self._rows if self._rows is not None else pa.table({"op": pa.array([], pa.string())})

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def schema_changed(self) -> bool:
        return bool(self.added_columns or self.removed_columns or self.type_changes)

    def __bool__(self) -> bool:
        return self.total > 0

    def _repr_html_(self) -> str:
        """The counts, warnings and first 20 change rows as an HTML table (Jupyter, marimo)."""
        import html

        shown = self.rows.slice(0, 20).to_pandas()
        counts = " · ".join(f"<b>{op}</b> {self.counts.get(op, 0):,}" for op in OPS)
        notes = "".join(f"<li>{html.escape(w)}</li>" for w in self.warnings)
        more = self.rows.num_rows - len(shown)
        return (f"<div><p>Change set by {html.escape(', '.join(self.key))}: {counts}</p>"
                + (f"<ul>{notes}</ul>" if notes else "") + shown.to_html(index=False, border=0)
                + (f"<p>… and {more:,} more row(s)</p>" if more > 0 else "") + "</div>")


@dataclass
class _Side:
    """One input as a DuckDB relation, with its exact column names, types, layouts, row count and a label."""

    relation: str
    columns: dict[str, str]
    rows: int
    label: str
    layouts: dict[str, str] = field(default_factory=dict)


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
         detect: str = "content", sep: str = ",", quote_char: str = '"', con: duckdb.DuckDBPyConnection | None = None,
         output: Path | None = None, constants: dict[str, str] | None = None, compression: str = "snappy") -> ChangeSet:
    """Compare two snapshots by `key` and return the change set.

    `previous` and `current` are Arrow tables or paths to Parquet or CSV files. CSV files are typed as the
    pipeline types them (`snapshot.load_snapshot`: whole-file types, the current file keeps the previous file's
    types while it fits them), read with `sep` and RFC 4180 quoting (`quote_char=""` for none).
    With `output`, the change rows go straight to that Parquet file, with the `constants` columns (name → SQL
    expression, e.g. the run id) appended to every row.
    """
    key = (key,) if isinstance(key, str) else tuple(key)
    if detect not in ("content", "date_field"):
        raise ValueError(f"detect must be 'content' or 'date_field', not {detect!r}")
    if detect == "date_field" and not date_field:
        raise ValueError("detect='date_field' needs a date_field")
    own = con is None
    con = con or connect()
    temps = _Temps(con)
    csv = TableConfig(name="", pk=key, date_field=date_field, sep=sep, quote=quote_char, escape=quote_char)
    try:
        prev = _open(con, previous, "previous", csv, temps, None)
        cur = _open(con, current, "current", csv, temps, prev)
        try:
            return _diff(con, prev, cur, key, date_field, detect, _Output(output, constants or {}, compression))
        except duckdb.ConversionException as exc:
            raise InputError(f"{prev.label} and {cur.label} cannot be compared ({str(exc).splitlines()[0]}) — "
                             "check the date field and the column types") from None
    finally:
        temps.drop()
        if own:
            con.close()


def _open(con, value: Input, side: str, csv: TableConfig, temps: _Temps, before: _Side | None) -> _Side:
    layouts: dict[str, str] = {}
    if isinstance(value, pa.Table):
        relation = temps.name("arrow", side)
        con.register(relation, value)
        label, rows, names = f"the {side} table", value.num_rows, value.column_names
    else:
        path = Path(value)
        if not path.is_file():
            raise InputError(f"The {side} snapshot {path} does not exist — check the path")
        label = str(path)
        if not _is_parquet(path):  # typed once, the way the pipeline types it, into a temporary snapshot
            table = replace(csv, name=path.stem)
            stable = {c: Column(c, t, before.layouts.get(c)) for c, t in before.columns.items()} if before else None
            path = load_snapshot(path, table, temps.file(f"{side}.parquet"), con=con, previous=stable).path
        relation = f"read_parquet({literal(str(path))})"
        rows = con.execute(f"SELECT count(*) FROM {relation}").fetchall()[0][0]
        names, layouts = pq.read_schema(path).names, read_layouts(path)
    described = con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    columns = {name: row[1] for name, row in zip(names, described, strict=True)}
    lower: dict[str, str] = {}
    for name in columns:
        if lower.setdefault(name.lower(), name) != name:
            raise InputError(f'{label[0].upper()}{label[1:]} has columns "{lower[name.lower()]}" and "{name}" that '
                             "differ only in case — rename one of them")
    for col in csv.pk:
        if col not in columns:
            raise InputError(f'{label[0].upper()}{label[1:]} has no key column "{col}" (columns: '
                             f'{", ".join(columns)}) — fix the key')
    date_field = csv.date_field
    if date_field and date_field not in columns:
        raise InputError(f'{label[0].upper()}{label[1:]} has no date field "{date_field}" — fix the date field')
    if date_field and columns[date_field] not in TEMPORAL | {"VARCHAR", "NULL"}:
        raise InputError(f'Date field "{date_field}" of {label} is {columns[date_field]}, not a date — name a date '
                         "or timestamp column as the date field")
    return _Side(relation=relation, columns=columns, rows=rows, label=label, layouts=layouts)


def _is_parquet(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"PAR1"


@dataclass
class _Output:
    """Where the change rows go: a Parquet file (with constant columns appended), or back to Python."""

    path: Path | None
    constants: dict[str, str]
    compression: str


def _diff(con, prev: _Side, cur: _Side, key: tuple[str, ...], date_field: str | None, detect: str,
          output: _Output) -> ChangeSet:
    result = ChangeSet(key=key)
    p_cols, c_cols = prev.columns, cur.columns
    result.added_columns = [c for c in c_cols if c not in p_cols]
    result.removed_columns = [c for c in p_cols if c not in c_cols]
    columns = list(c_cols) + result.removed_columns
    alias = {col: f"c{i}" for i, col in enumerate(columns)}  # exact names may differ only in case across sides
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
        layout = cur.layouts.get(col) if col in c_cols else prev.layouts.get(col)
        if layout and types[col] in TEMPORAL:
            result.layouts[col] = layout

    def side(s: _Side) -> str:
        """Every column of either input, cast once to the type both sides compare on, plus a row marker."""
        out = ["true AS __cdc_side"]
        for col in columns:
            have = s.columns.get(col)
            if have == types[col]:
                value = quote(col)
            elif have and types[col] == "VARCHAR":  # text as it was read (a widened column: no false update)
                value = text_of(quote(col), have, s.layouts.get(col))
            else:
                value = f"CAST({quote(col) if have else 'NULL'} AS {types[col]})"
            out.append(f"{value} AS {alias[col]}")
        return ", ".join(out)

    values = [c for c in columns if c not in key]
    changed = " OR ".join(f"p.{alias[c]} IS DISTINCT FROM c.{alias[c]}" for c in values if c in c_cols) or "false"
    if date_field:
        d = alias[date_field]
        bumped, backwards = f"c.{d} > p.{d}", f"c.{d} < p.{d}"
    else:
        bumped = backwards = "false"
    select = ["CASE WHEN p.__cdc_side IS NULL THEN 'I' WHEN c.__cdc_side IS NULL THEN 'D' ELSE 'U' END AS op"] + [
        f"COALESCE(c.{alias[col]}, p.{alias[col]}) AS {alias[col]}" if col in key else
        f"CASE WHEN c.__cdc_side THEN c.{alias[col]} ELSE p.{alias[col]} END AS {alias[col]}" for col in columns]
    select += [f"({changed}) AS __cdc_changed", f"COALESCE({bumped}, false) AS __cdc_bumped",
               f"COALESCE({backwards}, false) AS __cdc_backwards"]

    on = " AND ".join(f"p.{alias[k]} = c.{alias[k]}" for k in key)
    work = f"__cdc_diff_{next(_names)}"
    con.execute(f"""
        CREATE TEMP TABLE {work} AS
        SELECT * FROM (
            SELECT {', '.join(select)}
            FROM (SELECT {side(prev)} FROM {prev.relation}) p
            FULL OUTER JOIN (SELECT {side(cur)} FROM {cur.relation}) c ON {on}
        ) WHERE op <> 'U' OR __cdc_changed OR __cdc_bumped OR __cdc_backwards""")
    try:
        is_update = "__cdc_changed" if detect == "content" else "__cdc_bumped"
        stats = con.execute(f"""SELECT count(*) FILTER (WHERE op = 'I'), count(*) FILTER (WHERE op = 'D'),
                   count(*) FILTER (WHERE op = 'U' AND {is_update}),
                   count(*) FILTER (WHERE op = 'U' AND __cdc_changed AND NOT __cdc_bumped AND NOT __cdc_backwards),
                   count(*) FILTER (WHERE op = 'U' AND __cdc_backwards),
                   count(*) FILTER (WHERE op = 'U') FROM {work}""").fetchall()[0]
        result.counts = {"I": stats[0], "U": stats[2], "D": stats[1]}
        _check_keys(con, work, prev, cur, key, [alias[k] for k in key], inserted=stats[0], deleted=stats[1])
        out_cols = ["op"] + [  # naive timestamps are UTC by convention: say so in the output's type
            f"CAST({alias[c]} AS {TZ}) AS {quote(c)}" if types[c] == "TIMESTAMP" else f"{alias[c]} AS {quote(c)}"
            for c in columns] + [f"{sql} AS {quote(name)}" for name, sql in output.constants.items()]
        order = ", ".join(alias[k] for k in key)
        query = f"SELECT {', '.join(out_cols)} FROM {work} WHERE op <> 'U' OR {is_update} ORDER BY {order}"
        if output.path is None:
            result._rows = con.sql(query).to_arrow_table()
        else:
            result.path = _write_rows(con, query, [*columns, *output.constants], output, result.layouts)
        result.held_back = stats[5] - stats[2]  # changed, but not an update (date_field mode only)
        if result.held_back and output.path is not None:
            result.held_keys = output.path.with_name(output.path.stem + ".held.parquet")
            keys = ", ".join(f"{alias[k]} AS {quote(k)}" for k in key)
            con.execute(f"COPY (SELECT {keys} FROM {work} WHERE op = 'U' AND NOT {is_update}) TO "
                        f"{literal(str(result.held_keys))} (FORMAT parquet)")
    finally:
        con.execute(f"DROP TABLE IF EXISTS {work}")
    _warn(result, date_field, detect, unbumped=stats[3], backwards=stats[4])
    return result


def _write_rows(con, query: str, names: list[str], output: _Output, layouts: dict[str, str]) -> Path:
    """COPY the change rows to Parquet; names that differ only in case (DuckDB would rename one) go via Arrow."""
    assert output.path is not None
    if len({n.lower() for n in names}) == len(names):
        con.execute(f"COPY ({query}) TO {literal(str(output.path))} (FORMAT parquet, COMPRESSION "
                    f"{output.compression}{kv_metadata(layouts)})")
        return output.path
    reader = con.sql(query).to_arrow_reader(100_000)
    schema = reader.schema.with_metadata(layouts_metadata(layouts))
    codec = "none" if output.compression == "uncompressed" else output.compression
    with pq.ParquetWriter(output.path, schema, compression=codec) as writer:
        for batch in reader:
            writer.write_batch(batch)
    return output.path


def _check_keys(con, work: str, prev: _Side, cur: _Side, key: tuple[str, ...], aliases: list[str], *,
                inserted: int, deleted: int) -> None:
    """Raise `InputError` for NULL or duplicate keys in either input, naming the input, a count and examples."""
    keys = ", ".join(aliases)
    suspicious = con.execute(f"""SELECT count(*) FROM (SELECT {keys} FROM {work} GROUP BY ALL
                                 HAVING count(*) > 1 OR {' OR '.join(f'{a} IS NULL' for a in aliases)})""")
    if suspicious.fetchall()[0][0] or prev.rows - deleted != cur.rows - inserted:
        for side in (prev, cur):  # slow path, only for bad input: find which input, how many, examples
            check_keys(con, side.relation, key, side.label[0].upper() + side.label[1:])
        raise InputError(f"{prev.label} or {cur.label} has duplicate keys ({', '.join(key)}) — a key must "
                         "identify one row")


def _warn(result: ChangeSet, date_field: str | None, detect: str, *, unbumped: int, backwards: int) -> None:
    if date_field and unbumped:
        verb = ("not captured: kept as they were until their date moves" if detect == "date_field"
                else "captured as updates")
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

