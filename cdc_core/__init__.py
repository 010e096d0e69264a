"""cdc_core: snapshot change data capture from CSV tables into a Parquet data lake.

The public API, used by the CLI, the TUI and the notebooks alike.
"""

from .config import Config, TableConfig, load_config
from .engines import ChangeSet
from .engines.duckdb import diff
from .errors import CdcError, ConfigError, InputError, LakeError, SourceError, StateError
from .lake import make_lake
from .monitored import run_once
from .reader import read_changes
from .replay import replay, verify
from .report import RunReport, TableReport
from .schedule import run_forever

__all__ = ["CdcError", "ChangeSet", "Config", "ConfigError", "InputError", "LakeError", "RunReport",
           "SourceError", "StateError", "TableConfig", "TableReport", "diff", "load_config", "make_lake",
           "read_changes", "replay", "run_forever", "run_once", "verify"]
