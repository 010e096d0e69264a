"""DuckDB connections set up the one way the whole core uses them: UTC, bounded memory, spill folder."""

from __future__ import annotations

from pathlib import Path

import duckdb

from ...config import EngineConfig
from ...sql import literal, quote

__all__ = ["connect", "literal", "quote"]


def connect(engine: EngineConfig | None = None, spill_dir: Path | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection in UTC; with `spill_dir`, data beyond `memory_limit` spills there."""
    engine = engine or EngineConfig()
    con = duckdb.connect(config={"autoinstall_known_extensions": False})  # never download at run time
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")  # never terminal art in logs, pipes or a TUI
    if engine.memory_limit:
        con.execute(f"SET memory_limit = '{engine.memory_limit}'")
    if engine.threads:
        con.execute(f"SET threads = {int(engine.threads)}")
    if spill_dir is not None:
        spill_dir.mkdir(parents=True, exist_ok=True)
        con.execute("SET temp_directory = ?", [str(spill_dir)])
    con.execute("SET preserve_insertion_order = false")
    return con
