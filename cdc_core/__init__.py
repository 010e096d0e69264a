"""cdc_core: snapshot change data capture from CSV tables into a Parquet data lake.

The public API, used by the CLI, the TUI and the notebooks alike. Each name is imported when first used (PEP 562),
so a command that needs only part of the package (`diff`, `--help`) does not start the whole pipeline and pyarrow.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from .errors import CdcError, ConfigError, InputError, LakeError, SourceError, StateError
from .replay import replay, verify  # eager: `cdc_core.replay` is the function, never the module of that name

if TYPE_CHECKING:
    from .config import Config, TableConfig, load_config
    from .engines import ChangeSet
    from .engines.duckdb import diff
    from .lake import make_lake
    from .monitored import run_once
    from .reader import read_changes
    from .report import RunReport, TableReport
    from .schedule import run_forever

_LAZY = {"Config": "config", "TableConfig": "config", "load_config": "config", "ChangeSet": "engines",
         "diff": "engines.duckdb", "make_lake": "lake", "run_once": "monitored", "read_changes": "reader",
         "RunReport": "report", "TableReport": "report",
         "run_forever": "schedule"}

__all__ = ["CdcError", "ChangeSet", "Config", "ConfigError", "InputError", "LakeError", "RunReport",
           "SourceError", "StateError", "TableConfig", "TableReport", "diff", "load_config", "make_lake",
           "read_changes", "replay", "run_forever", "run_once", "verify"]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'cdc_core' has no attribute {name!r}")
    value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value  # once imported, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
