"""Reading only what the lake committed: the change rows of the runs on the log, never a file under `cdc/` that no
manifest lists (a run being committed, or a writer's that lost its race or was killed before its link).

    from cdc_core import load_config, make_lake, read_changes
    lake = make_lake(load_config("config.json").lake)
    rows = read_changes(lake, "clientes", since="20250101_000000")   # a pyarrow Table

The same from plain DuckDB, over the manifests (a manifest exists only for a committed run):

    SELECT f.key FROM read_json('lake/manifests/clientes/*.json') m, unnest(m.files) AS t(f)
    WHERE f.key LIKE 'cdc/%' AND m.run_id > '20250101_000000';

then `read_parquet([those keys], union_by_name = true)`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path

import pyarrow as pa

from .chain import head, walk_back
from .engines.duckdb.connection import connect, literal, quote
from .lake import Lake, read_manifests
from .layout import manifest_file


def committed_runs(lake: Lake, table: str, since: str | None = None) -> list[dict]:
    """The manifests of the committed runs after run `since` (default: every run the lake keeps), oldest first.
    After a run, only the runs since are read (from the head back), whatever the history's length."""
    if since is None:
        return read_manifests(lake, table)
    top = head(lake, table, repair=False)
    if top is None or top["run_id"] <= since:
        return []
    return [m for m in walk_back(lake, table, top, lambda m: m["run_id"] <= since) if m["run_id"] > since]


def read_changes(lake: Lake, table: str, since: str | None = None, *, runs: Iterable[str] | None = None,
                 folder: Path | None = None) -> pa.Table:
    """The committed change rows (`op`, the row, `_cdc_run_id`, `_cdc_captured_at`, …) of the runs after `since`
    (or of the chosen `runs`), ordered by run and key; columns that came and went are NULL where absent."""
    found = with_changes(committed_runs(lake, table, since), runs)
    with tempfile.TemporaryDirectory(prefix="cdc-read-") as tmp:
        files = [lake.local(manifest_file(m, "cdc"), folder or Path(tmp)) for m in found]
        return change_rows(files, found[-1]["pk"] if found else [])


def with_changes(runs: list[dict], chosen: Iterable[str] | None = None) -> list[dict]:
    """The manifests of `runs` that wrote change rows (only the `chosen` run ids, when given)."""
    wanted = None if chosen is None else set(chosen)
    return [m for m in runs if m.get("has_changes") and (wanted is None or m["run_id"] in wanted)]


def change_rows(files: list[Path], pk: list[str], where: str = "") -> pa.Table:
    """The rows of CDC files, ordered by run and key (`where`: a SQL filter); an `op` column alone when none."""
    if not files:
        return pa.table({"op": pa.array([], pa.string())})
    order = ", ".join(["_cdc_run_id", *(quote(k) for k in pk)])
    with closing(connect()) as con:
        return con.sql(f"SELECT * FROM {parquet_source(files)} {where} ORDER BY {order}").to_arrow_table()


def parquet_source(files: list[Path], *, filename: bool = False) -> str:
    """DuckDB's `read_parquet` of `files` (columns united by name), with each row's `filename` if asked."""
    listed = ", ".join(literal(str(p)) for p in files)
    return f"read_parquet([{listed}], union_by_name=true{', filename=true' if filename else ''})"
