"""A Parquet file's exact column names and cdc_core's metadata, read by DuckDB from its footer (no pyarrow).

DuckDB's own reader renames a column whose name differs only in case from an earlier one (`Nome` → `Nome_1`);
the file's schema keeps the exact names, in the same order.
"""

from __future__ import annotations

from pathlib import Path

from ..sql import literal
from ..types import META_KEY, layouts_of


def file_names(con, path: Path) -> list[str]:
    """The exact names of a Parquet file's top-level columns, in order."""
    rows = con.execute(f"SELECT name, num_children FROM parquet_schema({literal(str(path))})").fetchall()

    def after(i: int) -> int:  # the row after the subtree that starts at row i (the schema is depth-first)
        end = i + 1
        for _ in range(rows[i][1] or 0):
            end = after(end)
        return end

    names, i = [], 1  # row 0 is the root
    for _ in range(rows[0][1] or 0):
        names.append(rows[i][0])
        i = after(i)
    return names


def file_layouts(con, path: Path) -> dict[str, str]:
    """The timestamp layouts a Parquet file written by cdc_core records in its key-value metadata."""
    found = con.execute(f"SELECT value FROM parquet_kv_metadata({literal(str(path))}) "
                        f"WHERE key = CAST({literal(META_KEY)} AS BLOB)").fetchall()  # any key: bytes
    return layouts_of(found[0][0] if found else None)
