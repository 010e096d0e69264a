"""Sources deliver the current file of each configured table into a fresh folder.

A `Source` has one method, `fetch(tables, dest, last_version=...)`, returning a `Fetch`: the source's version,
the file of each table it delivered, and an error for each table it could not deliver (the others go on).
A table's file is `{table}.csv`, `{table}.csv.gz` or `{table}.parquet` (`FILE_SUFFIXES`); the snapshot loader reads
each of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..config import SourceConfig, TableConfig
from ..errors import CdcError
from ..extras import require

FILE_SUFFIXES = (".csv", ".csv.gz", ".parquet")


def table_file(folder: Path, table: str) -> Path | None:
    """The file a folder holds for `table` (`{table}.csv`, `.csv.gz` or `.parquet`), if any."""
    return next((folder / f"{table}{s}" for s in FILE_SUFFIXES if (folder / f"{table}{s}").is_file()), None)


@dataclass
class Fetch:
    """What one fetch delivered."""

    version: str | None
    files: dict[str, Path] = field(default_factory=dict)
    errors: dict[str, CdcError] = field(default_factory=dict)
    unchanged: bool = False


class Source(Protocol):
    """Anything that can deliver `{table}.csv` (or `.csv.gz`, `.parquet`) files."""

    description: str

    def fetch(self, tables: Sequence[TableConfig], dest: Path, *, last_version: str | None) -> Fetch: ...


def make_source(config: SourceConfig) -> Source:
    """The source a config names; ConfigError naming the extra when the source's library is not installed."""
    if config.type == "demo":
        from .demo import DemoSource

        return DemoSource(seed=config.seed, scale=config.scale)
    if config.type == "directory":
        from .directory import DirectorySource

        return DirectorySource(config.path)
    if config.type == "sqlite":
        from .sqlite import SqliteSource

        return SqliteSource(config.path)
    require(f"the {config.type} source")
    if config.type == "postgres":
        from .postgres import PostgresSource

        return PostgresSource(config.dsn, lock_timeout=config.lock_timeout,
                              statement_timeout=config.statement_timeout)
    if config.type == "http":
        from .http import HttpSource

        limits = {"timeout": config.timeout, "max_bytes": config.max_bytes}
        return HttpSource(config.url, **{k: v for k, v in limits.items() if v is not None})
    if config.type == "s3":
        from .s3 import S3Source

        return S3Source(config.s3)
    from .kaggle import KaggleSource

    return KaggleSource(config.dataset)
