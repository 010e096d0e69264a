"""Open table formats kept in the lake: each run's change set applied to a Delta Lake or Iceberg table.

The lake's own files (full load, cdc, base, manifests) stay the source of truth; a table format is a second,
derived copy of the current state that other engines read with ACID snapshots, time travel and (Delta) a change
feed. `make_format` names the implementation from the config; like fsspec's registry, each one is a
`"module:Class"` path imported only when used, so its library (deltalake, pyiceberg) stays an optional extra.

Every implementation is idempotent per run: `apply` records the run id in the same commit as its data and checks
it before writing, so a run retried after a crash is never applied twice.
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
    run_id: str  # YYYYMMDD_HHMMSS, strictly increasing per table
    key: tuple[str, ...]
    snapshot: Path
    changes: Path | None
    first: bool


class TableFormat(Protocol):
    """A table format: applies runs idempotently and reads the table back, now or as of a run."""

    name: str

    def apply(self, run: FormatRun) -> int:
        """Apply the run (once: a second call changes nothing) and return the table's version after it."""
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


def differences(actual: pa.Table, expected: pa.Table, key: tuple[str, ...]) -> str | None:
    """None when a format table's state equals a snapshot (columns, types, rows in any order); else what differs."""
    from .changes import differences as compare

    return compare(actual, expected, key)


__all__ = ["KNOWN_FORMATS", "CommitConflict", "FormatRun", "TableFormat", "differences", "make_format", "run_number"]
