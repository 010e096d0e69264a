"""A run's files as Arrow, ready for a table format: the snapshot, the rows to upsert, the keys to delete.

Types are the lake's (string, int64, float64, decimal, bool, date32, timestamp[us, UTC]); whatever else a reader
hands back (string_view, large_string, other timestamp units or zones) is normalised to them, and zone-less
timestamps are taken as UTC (the lake's convention), since Delta would need the timestampNtz feature for them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from .base import FormatRun

OP = "_cdc_op"  # the change rows' `op`, renamed so it can never collide with a table column
UPSERT, DELETE = "U", "D"


def lake_type(t: pa.DataType) -> pa.DataType:
    """The lake's type for an Arrow type a reader returns."""
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_timestamp(t):
        return pa.timestamp("us", tz="UTC")
    if pa.types.is_time(t) or pa.types.is_null(t):
        return pa.string()
    return t


def lake_schema(schema: pa.Schema) -> pa.Schema:
    """`schema` with every field in the lake's type (no metadata)."""
    return pa.schema([pa.field(f.name, lake_type(f.type)) for f in schema])


def normalize(table: pa.Table) -> pa.Table:
    """`table` cast to the lake's types (a no-op for tables that already have them)."""
    target = lake_schema(table.schema)
    return table if table.schema.remove_metadata() == target else table.cast(target)


def snapshot_reader(run: FormatRun) -> pa.RecordBatchReader:
    """The run's full table, streamed in the lake's types."""
    dataset = ds.dataset(run.snapshot, format="parquet")
    target = lake_schema(dataset.schema)
    batches = (b.cast(target) if b.schema != target else b for b in dataset.to_batches())
    return pa.RecordBatchReader.from_batches(target, batches)


def snapshot_schema(run: FormatRun) -> pa.Schema:
    return lake_schema(pq.read_schema(run.snapshot))


@dataclass
class ChangeRows:
    """A run's change rows in the snapshot's schema plus `_cdc_op`: `U` (insert or update) or `D` (delete)."""

    rows: pa.Table
    upserts: int
    deletes: int

    def __bool__(self) -> bool:
        return self.rows.num_rows > 0


def change_rows(run: FormatRun, schema: pa.Schema) -> ChangeRows:
    """The run's I/U rows (as upserts, cast to `schema`) and D rows (keys only) — nothing on a first capture.

    D rows carry only their key: their other values may be in the previous types, and a delete needs none.
    """
    empty = pa.table({**{f.name: pa.array([], f.type) for f in schema}, OP: pa.array([], pa.string())})
    if run.changes is None:
        return ChangeRows(empty, 0, 0)
    raw = pq.read_table(run.changes)
    op = raw["op"]
    parts = []
    for wanted, codes in ((UPSERT, ["I", "U"]), (DELETE, ["D"])):
        part = raw.filter(pc.is_in(op, pa.array(codes)))
        columns = {}
        for field in schema:
            keep = field.name in part.column_names and (wanted == UPSERT or field.name in run.key)
            columns[field.name] = (part[field.name].cast(field.type) if keep
                                   else pa.nulls(part.num_rows, field.type))
        columns[OP] = pa.array([wanted] * part.num_rows, pa.string())
        parts.append(pa.table(columns))
    return ChangeRows(pa.concat_tables(parts), parts[0].num_rows, parts[1].num_rows)


@dataclass
class SchemaChange:
    """How a run's snapshot schema differs from the format table's: columns added, removed, retyped."""

    added: list[str]
    removed: list[str]
    retyped: list[str]

    @property
    def rewrite(self) -> bool:
        """A removed or retyped column: every row changes shape, so the table is rewritten from the snapshot."""
        return bool(self.removed or self.retyped)

    def describe(self) -> str:
        parts = [f"{what}: {', '.join(cols)}" for what, cols in
                 (("added", self.added), ("removed", self.removed), ("widened", self.retyped)) if cols]
        return "; ".join(parts)


def schema_change(table: pa.Schema, snapshot: pa.Schema) -> SchemaChange:
    """Compare the format table's schema (as Arrow) with the snapshot's, in the lake's types."""
    old, new = lake_schema(table), lake_schema(snapshot)
    return SchemaChange(added=[f.name for f in new if f.name not in old.names],
                        removed=[f.name for f in old if f.name not in new.names],
                        retyped=[f.name for f in new if f.name in old.names and old.field(f.name).type != f.type])


def differences(actual: pa.Table, expected: pa.Table, key: tuple[str, ...]) -> str | None:
    """None when two states hold the same columns, types and rows (any order); else what differs, in one line.

    For `verify`: a format table's `current()` against the committed snapshot.
    """
    actual, expected = normalize(actual), normalize(expected)
    if set(actual.column_names) != set(expected.column_names):
        extra = sorted(set(actual.column_names) - set(expected.column_names))
        missing = sorted(set(expected.column_names) - set(actual.column_names))
        return f"columns differ (extra: {', '.join(extra) or '—'}; missing: {', '.join(missing) or '—'})"
    actual = actual.select(expected.column_names)
    retyped = [f"{f.name} is {actual.schema.field(f.name).type}, not {f.type}" for f in expected.schema
               if actual.schema.field(f.name).type != f.type]
    if retyped:
        return "column types differ: " + "; ".join(retyped)
    if actual.num_rows != expected.num_rows:
        return f"{actual.num_rows:,} rows, not {expected.num_rows:,}"
    order = [(k, "ascending") for k in key]
    a, e = actual.sort_by(order), expected.sort_by(order)
    if a.equals(e):
        return None
    for start in range(0, a.num_rows, 65536):  # find the first differing row without materialising all rows
        a_part, e_part = a.slice(start, 65536), e.slice(start, 65536)
        if not a_part.equals(e_part):
            for i, (x, y) in enumerate(zip(a_part.to_pylist(), e_part.to_pylist(), strict=True)):
                if x != y:
                    where = ", ".join(f"{k}={y[k]!r}" for k in key)
                    return f"row {start + i + 1:,} in key order differs ({where})"
    return "the rows differ"
