"""A Parquet input already in the lake's types becomes the snapshot as it is: copied, not decoded and re-encoded.

The planned write of such a file (`rules.parquet_plans`) would select every column unchanged, in the same order,
under the same name, and declare it optional: the file it would write holds the same values in the same types.
So when the file already is what the lake would write, the copy is that snapshot:
- every column is exactly its lake type and the type it had before: a text key, a UTC timestamp date field, nothing
  renamed, pinned with a layout or finer than a microsecond;
- every reader sees those types: each column is optional, and the Arrow schema a writer may have stored beside them
  (`ARROW:schema`, which pyarrow, pandas and Polars read back) holds the lake's Arrow types (not a dictionary, a
  large string, milliseconds or another time zone);
- it carries no other key-value metadata (no `cdc_core` layouts of another lake, no pandas index or dtypes, no
  Spark schema), and every column chunk is compressed with the lake's codec.
Its data-quality numbers come from one scan, as a written snapshot's do. Any other file is re-encoded.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ...config import TableConfig
from ...types import BLOB, BOOL, DATE, DECIMAL, DOUBLE, INT, TEXT, TZ, Column, lake_type_of
from .connection import literal, quote


def in_lake_types(src: Path, names: list[str], kinds: list[str], table: TableConfig,
                  previous: dict[str, Column], codec: str) -> bool:
    """Whether the Parquet file `src` (its lake `names`, DuckDB `kinds`) is already the snapshot it would become
    with the lake's compression `codec`."""
    import pyarrow.parquet as pq  # how every reader sees the file

    with pq.ParquetFile(src) as parquet:  # one read of the footer
        meta, schema = parquet.metadata, parquet.schema_arrow  # the schema as pyarrow reads it back
    if set(meta.metadata or {}) - {b"ARROW:schema"}:
        return False
    if schema.names != names:
        return False
    if any(not field.nullable or field.type != _arrow_type(lake_type_of(kind))
           for field, kind in zip(schema, kinds, strict=True)):
        return False
    want = "UNCOMPRESSED" if codec in ("uncompressed", "none") else codec.upper()
    if any(meta.row_group(g).column(c).compression != want
           for g in range(meta.num_row_groups) for c in range(meta.num_columns)):
        return False
    for name, kind in zip(names, kinds, strict=True):
        lake, pin, before = lake_type_of(kind), table.pinned(name), previous.get(name)
        if kind.replace(" ", "") != lake.replace(" ", ""):
            return False  # cast on the way in (INTEGER → BIGINT, a naive or nanosecond timestamp, …)
        if name in table.pk and lake != TEXT or name == table.date_field and lake != TZ:
            return False
        if pin is not None and (pin.type != lake or pin.layout) or before is not None and before.type != lake:
            return False
    return True


def _stat(value: str, kind: str) -> str:
    """A column's smallest or largest value as the text a COPY's statistics give it."""
    if kind == BOOL:
        return f"CAST(CAST({value} AS INTEGER) AS VARCHAR)"
    if kind == BLOB:
        return f"hex({value})"
    return f"CAST({value} AS VARCHAR)"


def copy(con, src: Path, out: Path, columns: dict[str, str]) -> list[tuple]:
    """Copy `src` to `out` (replaced whole, never half-written); the statistics a COPY's `RETURN_STATS` would
    give for it (`columns`: name → lake type): one row (file, rows, …, {column: {null_count, min, max}}).
    DuckDB answers them from the file's own statistics where it holds exact ones (nulls as rows less values), so
    no column's data is read, but a DOUBLE column's: a footer leaves NaN out and puts -0.0 at the low end, so its
    ends are read from its data (the FILTERs keep DuckDB from taking them from the footer)."""
    relation = f"read_parquet({literal(str(src))})"

    def ends(c: str, kind: str) -> list[str]:
        if kind == DOUBLE:
            valued = f"FILTER (WHERE {quote(c)} IS NOT NULL)"
            return [f"count(*) FILTER (WHERE {quote(c)} IS NULL)",
                    *(_stat(f"{end}({quote(c)}) {valued}", kind) for end in ("min", "max"))]
        return [f"count(*) - count({quote(c)})", _stat(f"min({quote(c)})", kind), _stat(f"max({quote(c)})", kind)]

    doubles = {c for c, kind in columns.items() if kind == DOUBLE}
    numbers: dict[str, list] = {}
    for group in ([c for c in columns if c not in doubles], [c for c in columns if c in doubles]):
        if group:  # apart: a query that reads a DOUBLE column's data would read every other column's too
            found = con.execute(f"SELECT {', '.join(e for c in group for e in ends(c, columns[c]))} "
                                f"FROM {relation}").fetchall()[0]
            numbers.update((c, found[3 * i:3 * i + 3]) for i, c in enumerate(group))
    rows = con.execute(f"SELECT count(*) FROM {relation}").fetchall()[0][0]  # from the footer
    target = out.with_name(f".{out.name}.copy")
    shutil.copyfile(src, target)
    os.replace(target, out)
    stats = {quote(c): dict(zip(("null_count", "min", "max"), numbers[c], strict=True)) for c in columns}
    return [(str(out), rows, None, None, stats)]


def _arrow_type(lake: str):
    """The Arrow type a lake column of type `lake` reads back as (from a snapshot DuckDB writes)."""
    import pyarrow as pa

    if match := DECIMAL.fullmatch(lake):
        return pa.decimal128(int(match[1]), int(match[2]))
    return {TEXT: pa.string(), INT: pa.int64(), DOUBLE: pa.float64(), BOOL: pa.bool_(), DATE: pa.date32(),
            TZ: pa.timestamp("us", tz="UTC"), BLOB: pa.binary()}[lake]
