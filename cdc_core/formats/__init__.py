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
from typing import TYPE_CHECKING

from ..config import LakeConfig, TableFormatConfig
from ..errors import ConfigError
from .base import CommitConflict, FormatRun, TableFormat, run_number

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["KNOWN_FORMATS", "CommitConflict", "FormatRun", "TableFormat", "differences", "make_format",
           "run_number", "with_versions"]

# name -> (implementation, the library it needs, the extra that installs it, its title in messages)
KNOWN_FORMATS = {
    "delta": ("cdc_core.formats.delta:DeltaFormat", "deltalake", "delta", "Delta"),
    "iceberg": ("cdc_core.formats.iceberg:IcebergFormat", "pyiceberg", "iceberg", "Iceberg"),
}


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
