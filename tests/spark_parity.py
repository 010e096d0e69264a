"""Running one capture step on both engines and comparing everything a user or a later run could notice."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from cdc_core.config import TableConfig
from cdc_core.engines import schema_of
from cdc_core.errors import CdcError

STAMP = {"_cdc_run_id": "20250102_030405", "_cdc_captured_at": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)}


@dataclass
class Outcome:
    """What one engine made of a previous/current file pair: snapshots, change set, held-back and replayed files."""

    error: str | None = None
    first: object = None
    second: object = None
    changes: object = None
    files: dict[str, Path] | None = None


def capture(engine, folder: Path, previous: Path, current: Path, table: TableConfig, *,
            changed_columns: bool = True, before_image: bool = False) -> Outcome:
    """Snapshot both files (the second with the first's types), diff, hold back, replay — as the pipeline does."""
    folder.mkdir(parents=True, exist_ok=True)
    out = Outcome(files={})
    try:
        out.first = engine.load_snapshot(previous, table, folder / "first.parquet")
        out.second = engine.load_snapshot(current, table, folder / "second.parquet", previous=schema_of(out.first.path))
        out.changes = engine.diff(out.first.path, out.second.path, table, output=folder / "changes.parquet",
                                  stamp=STAMP, changed_columns=changed_columns, before_image=before_image,
                                  labels=(f"the last capture of {previous.name}", str(current.name)))
    except CdcError as exc:
        out.error = str(exc)
        return out
    out.files = {"first": out.first.path, "second": out.second.path, "changes": out.changes.path}
    if out.changes.held_keys is not None:
        engine.hold_back(out.first.path, out.second.path, out.changes.held_keys, table.pk, folder / "held.parquet")
        out.files["held"] = folder / "held.parquet"
        out.files["held_keys"] = out.changes.held_keys
    committed = out.files.get("held", out.second.path)
    columns = schema_of(committed)
    replayed = folder / "replayed.parquet"
    engine.replay(out.first.path, [out.changes.path] if out.changes.total else [],
                  {c.name: c.type for c in columns.values()}, table.pk,
                  {c.name: c.layout for c in columns.values() if c.layout}, replayed)
    out.files["replayed"] = replayed
    return out


def rows(path: Path, ordered: bool) -> list[dict]:
    table = pq.read_table(path)
    found = table.to_pylist()
    return found if ordered else sorted(found, key=repr)


def schema(path: Path) -> pa.Schema:
    """The file's Arrow schema with every field nullable (which columns are `required` is each engine's guess)."""
    found = pq.read_schema(path)
    return pa.schema([f.with_nullable(True) for f in found], metadata=found.metadata)


def assert_same(duck: Outcome, spark: Outcome) -> None:
    """The Spark engine's outcome equals the DuckDB engine's in every respect the lake or a user sees."""
    assert spark.error == duck.error
    if duck.error:
        return
    for attr in ("rows", "columns", "layouts", "widened", "warnings"):
        assert getattr(spark.first, attr) == getattr(duck.first, attr), attr
        assert getattr(spark.second, attr) == getattr(duck.second, attr), attr
    for snap in ("first", "second"):  # the manifest's data-quality numbers: distinct is approximate on both
        assert_same_quality(getattr(duck, snap).quality, getattr(spark, snap).quality, duck.files[snap])
    for attr in ("counts", "added_columns", "removed_columns", "type_changes", "warnings", "layouts",
                 "column_counts", "held_back"):
        assert getattr(spark.changes, attr) == getattr(duck.changes, attr), attr
    assert spark.files.keys() == duck.files.keys()
    for name, path in duck.files.items():
        assert schema(spark.files[name]) == schema(path), name
        assert rows(spark.files[name], ordered=name in ("changes", "replayed")) == \
            rows(path, ordered=name in ("changes", "replayed")), name
    committed = duck.files.get("held", duck.files["second"])  # the law both engines keep: replay = snapshot
    assert rows(duck.files["replayed"], ordered=False) == rows(committed, ordered=False)


def assert_same_quality(duck: dict[str, dict], spark: dict[str, dict], snapshot: Path) -> None:
    """NULLs, min and max equal; distinct values each within HyperLogLog's error of the exact count (DuckDB's
    sketch is the coarser: up to ~15 %)."""
    import pyarrow.compute as pc

    assert spark.keys() == duck.keys()
    table = pq.read_table(snapshot)
    for column, numbers in duck.items():
        theirs = spark[column]
        assert {k: theirs[k] for k in ("nulls", "min", "max")} == \
            {k: numbers[k] for k in ("nulls", "min", "max")}, column
        exact = pc.count_distinct(table[column]).as_py()
        for found in (numbers["distinct"], theirs["distinct"]):
            assert abs(found - exact) <= max(1, 0.15 * exact), (column, found, exact)
