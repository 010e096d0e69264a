"""The DuckDB engine (the default): everything in this process, bounded by `engine.memory_limit`, spilling to
`data_dir/tmp`. One connection per operation, so the tables of a cycle can use it from several threads."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import closing
from datetime import datetime
from pathlib import Path

from ...config import Config, EngineConfig, TableConfig
from ...types import Column
from ..changeset import ChangeSet
from ..rules import Snapshot
from .connection import connect, literal, quote
from .diff import diff
from .law import kv_metadata, nullable, project
from .snapshot import hold_back, load_snapshot


class DuckDBEngine:
    """`cdc_core`'s own DuckDB code behind the engine interface."""

    name = "duckdb"

    def __init__(self, config: Config | None = None, *, settings: EngineConfig | None = None):
        """With a config: its `engine` settings, spilling to `data_dir/tmp`; else `settings` (or DuckDB's defaults)."""
        self.settings = config.engine if config else settings or EngineConfig()
        self.spill = config.data_dir / "tmp" if config else None
        compression = config.compression if config else "snappy"
        self.codec = "uncompressed" if compression == "none" else compression

    def _connect(self):
        return closing(connect(self.settings, spill_dir=self.spill))

    def load_snapshot(self, src: Path, table: TableConfig, out: Path, *,
                      previous: dict[str, Column] | None = None) -> Snapshot:
        with self._connect() as con:  # with a previous snapshot, the diff that follows checks the keys
            return load_snapshot(src, table, out, con=con, compression=self.codec, previous=previous,
                                 check=previous is None)

    def diff(self, previous: Path, current: Path, table: TableConfig, *, output: Path,
             stamp: dict[str, str | datetime], changed_columns: bool = False, before_image: bool = False,
             details: Path | None = None, labels: tuple[str, str] | None = None) -> ChangeSet:
        constants = {name: f"TIMESTAMPTZ {literal(value.isoformat())}" if isinstance(value, datetime)
                     else literal(value) for name, value in stamp.items()}
        with self._connect() as con:
            return diff(previous, current, table.pk, date_field=table.date_field, detect=table.detect, con=con,
                        output=output, compression=self.codec, constants=constants,
                        changed_columns=changed_columns, before_image=before_image, details=details,
                        labels=labels)

    def diff_files(self, previous: Path, current: Path, table: TableConfig, *, output: Path,
                   changed_columns: bool = False) -> ChangeSet:
        with self._connect() as con:
            return diff(previous, current, table.pk, date_field=table.date_field, detect=table.detect,
                        sep=table.sep, quote_char=table.quote, escape_char=table.escape, con=con, output=output,
                        compression=self.codec, changed_columns=changed_columns)

    def hold_back(self, previous: Path, current: Path, held: Path, key: Sequence[str], out: Path) -> None:
        with self._connect() as con:
            hold_back(con, previous, current, held, tuple(key), out, compression=self.codec)

    def replay(self, base: Path, changes: Sequence[Path], columns: dict[str, str], key: Sequence[str],
               layouts: dict[str, str], output: Path, *, forget: Sequence[frozenset[str]] = ()) -> int:
        alias = {col: f"c{i}" for i, col in enumerate(columns)}
        forget = list(forget) or [frozenset()] * (1 + len(changes))
        with self._connect() as con:
            base_rows = project(con, base, columns, alias, forget=forget[0])
            if changes:
                merged = " UNION ALL ".join(project(con, p, columns, alias, ops=True, forget=f)
                                            for p, f in zip(changes, forget[1:], strict=True))
                keys = ", ".join(alias[k] for k in key)
                con.execute(f"CREATE TEMP TABLE __cdc_last AS SELECT * FROM ({merged}) "
                            f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY _cdc_run_id DESC) = 1")
                match = " AND ".join(f"l.{alias[k]} = b.{alias[k]}" for k in key)
                rows = (f"SELECT * FROM ({base_rows}) b WHERE NOT EXISTS (SELECT 1 FROM __cdc_last l WHERE {match}) "
                        f"UNION ALL SELECT {', '.join(alias.values())} FROM __cdc_last WHERE op <> 'D'")
            else:
                rows = base_rows
            named = ", ".join(f"{nullable(alias[c])} AS {quote(c)}" for c in columns)
            order = ", ".join(alias[k] for k in key)
            output.parent.mkdir(parents=True, exist_ok=True)
            con.execute(f"COPY (SELECT {named} FROM ({rows}) ORDER BY {order}) TO {literal(str(output))} "
                        f"(FORMAT parquet{kv_metadata(layouts)})")
            return con.execute(f"SELECT count(*) FROM read_parquet({literal(str(output))})").fetchall()[0][0]

    def close(self) -> None:
        pass
