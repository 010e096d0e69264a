"""Engines: where snapshots are typed, diffed and replayed. DuckDB (the default, in this process) or Spark.

Every engine gives the same results on the same files: the same column types (see `types`), the same change rows
(I/U/D, NULL-safe, dates as UTC instants, composite keys, widened columns compared on their read text), the same
one-line errors for duplicate or NULL keys. A capture, a replay and the `diff` command talk to this interface only;
an engine's library is imported when the engine is made, and its absence names the extra. DuckDB is also the
core's query tool, whatever engine captures: `verify`, `read_changes`, the notebooks and the TUI read the lake's
Parquet files with it (`duckdb.connection`, and `duckdb.diff` for `verify`'s comparison).

Layout: the rules every engine follows are here, once — `rules` (the column plan, the CSV dialect rule, the
checks and their one-line errors, `Snapshot`), `changeset` (the change-row shape, the diff's counts, warnings and
errors), `csvfile`, `csvtext`, `csvquotes` and `csvlines` (reading a CSV's header and refusing what readers take
differently); each engine's package (`duckdb/`, `spark/`) holds only its own expressions and imports no other
engine's. A new engine is a package and a line in `KNOWN_ENGINES` (docs/engines.md).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..errors import ConfigError
from .changeset import OPS, ChangeSet
from .rules import Snapshot, is_parquet, said_once, schema_of

if TYPE_CHECKING:
    from ..config import Config, TableConfig
    from ..types import Column

__all__ = ["KNOWN_ENGINES", "OPS", "ChangeSet", "Engine", "Snapshot", "engine_class", "is_parquet", "make_engine",
           "said_once", "schema_of"]

# name -> (implementation, the library it needs, the extra that installs it)
KNOWN_ENGINES = {
    "duckdb": ("cdc_core.engines.duckdb:DuckDBEngine", "duckdb", None),
    "spark": ("cdc_core.engines.spark:SparkEngine", "pyspark", "spark"),
}
CONNECT_EXTRA = "spark-connect"  # a Spark engine with a `remote` (sc://) needs pyspark[connect], not just pyspark


class Engine(Protocol):
    """Types a table's file into a snapshot, diffs two snapshots, keeps held-back rows, replays change sets."""

    name: str

    def load_snapshot(self, src: Path, table: TableConfig, out: Path, *,
                      previous: dict[str, Column] | None = None) -> Snapshot:
        """Check and type a table's file (CSV, gzipped CSV or Parquet) into a Parquet snapshot at `out`."""
        ...

    def diff(self, previous: Path, current: Path, table: TableConfig, *, output: Path,
             stamp: dict[str, str | datetime], changed_columns: bool = False, before_image: bool = False,
             details: Path | None = None, labels: tuple[str, str] | None = None) -> ChangeSet:
        """The change rows of `current` against `previous`, written to `output` with the `stamp` columns (and,
        asked for, `_cdc_changed` and `B` rows); `details`: each U row's key and changed columns; `labels`: how
        messages name the two inputs. NULL and duplicate keys of either input raise InputError."""
        ...

    def diff_files(self, previous: Path, current: Path, table: TableConfig, *, output: Path,
                   changed_columns: bool = False) -> ChangeSet:
        """The `diff` command: two files (CSV in the table's dialect, gzipped CSV or Parquet) typed as a capture
        types them (the current CSV keeps the previous one's types while it fits them), then `diff`."""
        ...

    def hold_back(self, previous: Path, current: Path, held: Path, key: Sequence[str], out: Path) -> None:
        """`current`, except that the rows whose keys are in `held` keep their `previous` values."""
        ...

    def replay(self, base: Path, changes: Sequence[Path], columns: dict[str, str], key: Sequence[str],
               layouts: dict[str, str], output: Path, *, forget: Sequence[frozenset[str]] = ()) -> int:
        """`base` with the change files applied in order (per key the last change wins), as `columns`; rows.

        `forget[i]`, for `[base, *changes][i]`: columns whose values in that file are read as NULL (they left the
        table after it and came back)."""
        ...

    def close(self) -> None:
        """Free what the engine holds (a session, a connection)."""
        ...


def make_engine(config: Config) -> Engine:
    """The engine a config names (DuckDB by default); ConfigError naming the extra if its library is missing."""
    return engine_class(config.engine.type, remote=bool(config.engine.remote))(config)


def engine_class(kind: str, *, remote: bool = False) -> type:
    """The class of engine `kind`, imported now; ConfigError naming the extra if its library is missing (for a
    Spark Connect `remote`, the extra that also brings the Connect client)."""
    target, library, extra = KNOWN_ENGINES[kind]
    try:
        importlib.import_module(library)
    except ImportError:
        what, extra = ("the Spark Connect engine", CONNECT_EXTRA) if remote else (f"the {kind} engine", extra)
        raise ConfigError(f"{what} needs {library}: pip install 'cdc-core[{extra}]'") from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)
