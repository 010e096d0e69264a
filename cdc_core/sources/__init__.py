"""Sources deliver the current file of each configured table into a fresh folder.

A `Source` has one method, `fetch(tables, dest, last_version=...)`, returning a `Fetch`: the source's version,
the file of each table it delivered, and an error for each table it could not deliver (the others go on).
A table's file is `{table}.csv`, `{table}.csv.gz` or `{table}.parquet` (`FILE_SUFFIXES`); the snapshot loader reads
each of them.
"""

from __future__ import annotations

from ..config import SourceConfig
from ..extras import require
from .base import FILE_SUFFIXES, Fetch, Source, table_file

__all__ = ["FILE_SUFFIXES", "Fetch", "Source", "make_source", "table_file"]


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
