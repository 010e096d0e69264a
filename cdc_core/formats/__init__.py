"""Open table formats kept in the lake: each run's change set applied to a Delta Lake or Iceberg table.

The lake's own files (full load, cdc, base, manifests) stay the source of truth; a table format is a second,
derived copy of the current state that other engines read with ACID snapshots, time travel and (Delta) a change
feed. `make_format` names the implementation from the config; like fsspec's registry, each one is a
`"module:Class"` path imported only when used, so its library (deltalake, pyiceberg) stays an optional extra.

Every implementation keeps the format table on the lake's committed history. `apply` records the run id (and its
token) in the same commit as its data and reads the table's last run before writing:

- the run itself: applied already (a retry after a crash), nothing to do;
- a run of the lake's history (the run's parent, or an older one when the runs since changed nothing): apply;
- anything else is a run the lake never committed (its writer stopped between the format and the lake's link, and
  another writer took over), whatever its id: the table goes back to the state of the newest run of the history
  first (Delta `restore`, an Iceberg rollback), or, when that state is gone, the run rewrites it from its snapshot.

That bookkeeping (which runs a table holds, its last run, the version after a run, the choice above) is written once,
in `runs.RunBookkeeping`; `delta.py` and `iceberg.py` hold only what their library does.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..config import LakeConfig, TableFormatConfig
from ..errors import ConfigError, LakeError

if TYPE_CHECKING:
    import pyarrow as pa

# name -> (implementation, the library it needs, the extra that installs it, its title in messages)
KNOWN_FORMATS = {
    "delta": ("cdc_core.formats.delta:DeltaFormat", "deltalake", "delta", "Delta"),
    "iceberg": ("cdc_core.formats.iceberg:IcebergFormat", "pyiceberg", "iceberg", "Iceberg"),
}


class CommitConflict(LakeError):
    "Another writer committed to the format table first: the run was not applied (it lost the race)."


@dataclass(frozen=True)
class FormatRun:
    """One committed run of one table, as a table format applies it.

    `snapshot` is the run's full table (Parquet); `changes` its change rows (Parquet: `op` in I/U/D, the row's
    columns, `_cdc_*` columns; D rows carry the previous row), None on the first capture. Extra `_cdc_*` columns
    and `op = "B"` rows (before-images) are ignored.
    """

    table: str
    run_id: str  # YYYYMMDD_HHMMSS, strictly increasing along the lake's history
    key: tuple[str, ...]
    snapshot: Path
    changes: Path | None
    first: bool
    history: tuple[str, ...] = ()  # the lake's committed runs before this one, oldest first: its parent is last
    token: str | None = None  # this capture's token: two writers may pick the same run id

    def follows(self, run_id: str | None) -> bool:
        """Whether a format table whose last run is `run_id` holds the state this run starts from: the parent's, or
        an older one of the lake's history when the runs since wrote nothing."""
        return run_id is not None and run_id in self.history

    def is_run(self, run_id: str | None, token: str | None) -> bool:
        """Whether a format table's last run (id, token) is this very run (a run recorded without token matches)."""
        return run_id == self.run_id and (not token or not self.token or token == self.token)


class TableFormat(Protocol):
    """A table format: applies runs idempotently and reads the table back, now or as of a run."""

    name: str

    def apply(self, run: FormatRun) -> int:
        """Apply the run (once: a second call changes nothing) and return the table's version after it."""
        ...

    def last_run(self, table: str) -> tuple[str, str | None] | None:
        """The run (id, token) whose state the table holds now; None when there is no table yet."""
        ...

    def applied_version(self, table: str, run_id: str) -> int | None:
        """The table's version holding the state after `run_id`, or None if that run is not applied."""
        ...

    def current(self, table: str) -> pa.Table:
        """The table's current state."""
        ...

    def as_of(self, table: str, run_id: str) -> pa.Table:
        """The table as it was right after run `run_id`."""
        ...


def make_format(config: TableFormatConfig | None, lake: LakeConfig) -> TableFormat | None:
    """The table format a config names (None without `"table_format"`); ConfigError if its library is missing."""
    if config is None:
        return None
    target, library, extra, title = KNOWN_FORMATS[config.name]
    try:
        importlib.import_module(library)
    except ImportError:
        raise ConfigError(f"the {title} table format needs {library}: pip install 'cdc-core[{extra}]'") from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)(config, lake)


def run_number(run_id: str) -> int:
    """A run id (`YYYYMMDD_HHMMSS`) as the increasing integer a Delta app transaction records."""
    digits = run_id.replace("_", "")
    if len(digits) != 14 or not digits.isdigit():
        raise ValueError(f"run id {run_id!r} is not YYYYMMDD_HHMMSS")
    return int(digits)


def with_versions(manifests: list[dict], table_format: TableFormat | None) -> list[dict]:
    """The manifests, each with `table_format` = {name, version}: the format table's version holding that run's
    state (None where the table does not have it); unchanged without a format."""
    if table_format is None:
        return manifests
    return [{**m, "table_format": {"name": table_format.name,
                                   "version": table_format.applied_version(m["table"], m["run_id"])}}
            for m in manifests]


def differences(actual: pa.Table, expected: pa.Table, key: tuple[str, ...]) -> str | None:
    """None when a format table's state equals a snapshot (columns, types, rows in any order); else what differs."""
    from .changes import differences as compare

    return compare(actual, expected, key)


__all__ = ["KNOWN_FORMATS", "CommitConflict", "FormatRun", "TableFormat", "differences", "make_format", "run_number",
           "with_versions"]
