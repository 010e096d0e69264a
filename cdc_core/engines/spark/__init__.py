"""The Spark engine: the same capture on a Spark cluster (classic or Spark Connect), for tables that outgrow one
machine.

Same results as the DuckDB engine, file for file: the same types (`spark.types` mirrors `types`), change rows,
counts, warnings and errors (both engines follow `engines.rules` and `engines.changeset`), and one Parquet file at
each path the pipeline names, with the same Arrow schema and key-value metadata (`spark.parquet`). Every path it reads or writes is a
path under `data_dir` (or a file the caller names): on a cluster, `data_dir` must be a folder every executor sees
at the same path (see README, "Spark engine"). One session per engine, opened on first use and shared by the
table threads of a cycle; `close()` stops it when the engine started it.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from ...config import Config, EngineConfig, TableConfig
from ...types import Column
from ..changeset import ChangeSet, Output, missing_input
from ..rules import Snapshot, is_parquet, schema_of
from .session import open_session


class SparkEngine:
    """`cdc_core`'s capture on Spark behind the engine interface."""

    name = "spark"

    def __init__(self, config: Config | None = None, *, settings: EngineConfig | None = None):
        """With a config: its `engine` settings, scratch files in `data_dir/tmp`; else `settings` (or local[*])."""
        self.settings = config.engine if config else settings or EngineConfig(type="spark", master="local[*]")
        self.codec = config.compression if config else "snappy"
        self.scratch = config.data_dir / "tmp" if config else None
        self._session, self._owned, self._lock = None, False, threading.Lock()

    @property
    def spark(self):
        """The session, opened on first use (a cycle with nothing to diff never starts a JVM)."""
        with self._lock:
            if self._session is None:
                self._session, self._owned = open_session(self.settings)
            return self._session

    def load_snapshot(self, src: Path, table: TableConfig, out: Path, *,
                      previous: dict[str, Column] | None = None) -> Snapshot:
        from .snapshot import load_snapshot

        return load_snapshot(self.spark, src, table, out, compression=self.codec, previous=previous,
                             check=previous is None)  # with a previous snapshot, the diff that follows checks keys

    def diff(self, previous: Path, current: Path, table: TableConfig, *, output: Path,
             stamp: dict[str, str | datetime], changed_columns: bool = False, before_image: bool = False,
             details: Path | None = None, labels: tuple[str, str] | None = None) -> ChangeSet:
        from pyspark.sql import functions as F

        from .compare import compare, open_side

        constants = {name: F.lit(value.isoformat()).cast("timestamp") if isinstance(value, datetime)
                     else F.lit(value) for name, value in stamp.items()}
        prev = open_side(self.spark, previous, table.pk, table.date_field)
        cur = open_side(self.spark, current, table.pk, table.date_field)
        if labels:
            prev.label, cur.label = labels
        return compare(prev, cur, table.pk, table.date_field, table.detect,
                       Output(output, {}, self.codec, changed_columns, before_image, details), constants)

    def diff_files(self, previous: Path, current: Path, table: TableConfig, *, output: Path,
                   changed_columns: bool = False) -> ChangeSet:
        """`diff` of two files as the `diff` command takes them (CSV typed as the pipeline types it, or Parquet)."""
        folder = Path(tempfile.mkdtemp(prefix=".cdc-diff-", dir=self.scratch or output.parent))
        try:
            sides = []
            for path, side in ((Path(previous), "previous"), (Path(current), "current")):
                if not path.is_file():
                    raise missing_input(side, path)
                if not is_parquet(path):
                    stable = schema_of(sides[0]) if sides else None
                    from .snapshot import load_snapshot

                    path = load_snapshot(self.spark, path, replace(table, name=path.stem), folder / f"{side}.parquet",
                                         compression=self.codec, previous=stable, check=False).path  # the diff checks
                sides.append(path)
            return self.diff(sides[0], sides[1], table, output=output, stamp={}, changed_columns=changed_columns)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def hold_back(self, previous: Path, current: Path, held: Path, key: Sequence[str], out: Path) -> None:
        from pyspark.sql import functions as F

        from ...types import read_layouts
        from .parquet import file_types, write_single
        from .types import col, project

        columns = file_types(current)
        alias = {c: f"c{i}" for i, c in enumerate(columns)}
        keys = [alias[k] for k in key]
        held_keys = self.spark.read.parquet(str(held)).select([col(k).alias(alias[k]) for k in key])
        rows = (project(self.spark, current, columns).join(held_keys, keys, "left_anti")
                .unionByName(project(self.spark, previous, columns).join(held_keys, keys, "left_semi")))
        layouts = {c: v for c, v in read_layouts(current).items() if c in columns}
        write_single(rows.select([F.col(alias[c]).alias(c) for c in columns]), out, compression=self.codec,
                     layouts=layouts)

    def replay(self, base: Path, changes: Sequence[Path], columns: dict[str, str], key: Sequence[str],
               layouts: dict[str, str], output: Path, *, forget: Sequence[frozenset[str]] = ()) -> int:
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        from .parquet import file_rows, write_single
        from .types import project

        alias = {c: f"c{i}" for i, c in enumerate(columns)}
        keys = [alias[k] for k in key]
        forget = list(forget) or [frozenset()] * (1 + len(changes))
        rows = project(self.spark, base, columns, forget=forget[0])
        if changes:
            merged = project(self.spark, changes[0], columns, ops=True, forget=forget[1])
            for path, gone in zip(changes[1:], forget[2:], strict=True):
                merged = merged.union(project(self.spark, path, columns, ops=True, forget=gone))
            last = (merged.withColumn("__n", F.row_number().over(
                Window.partitionBy(*keys).orderBy(F.col("_cdc_run_id").desc()))).where(F.col("__n") == 1))
            rows = (rows.join(last.select(*keys), keys, "left_anti")
                    .unionByName(last.where(F.col("op") != "D").select(*alias.values())))
        output.parent.mkdir(parents=True, exist_ok=True)
        order = [f"__cdc_k{i}" for i in range(len(keys))]
        named = rows.select([F.col(alias[c]).alias(c) for c in columns] +
                            [F.col(k).alias(o) for k, o in zip(keys, order, strict=True)])
        write_single(named, output, compression=self.codec, layouts=layouts, order=order)
        return file_rows(output)

    def close(self) -> None:
        with self._lock:
            if self._session is not None and self._owned:
                self._session.stop()
            self._session = None
