"""Read-only views of what a lake captured, in Arrow and plain lists — what the notebooks read, without pandas.

Which lake and config a notebook opens (its arguments, then the environment, then a default) and the tables it
holds; the change rows of chosen runs or of a dry run, the busiest keys, a table as of a run. `cdc_core.explore`
re-exports these and adds the pandas frames and altair charts; this module needs neither, so the core imports it
without the notebooks extra. Nothing here writes to the lake. Files of a remote lake are downloaded once per process
into a temporary cache (manifests, CDC and base files never change).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from .config import LakeConfig, TableConfig, load_config
from .engines import ChangeSet
from .engines.duckdb import diff
from .engines.duckdb.connection import connect, literal, quote
from .errors import CdcError, LakeError
from .formats import TableFormat, make_format
from .lake import Lake, LocalLake, make_lake, read_manifests
from .layout import full_load_key, manifest_file
from .reader import change_rows, committed_runs, parquet_source, with_changes
from .replay import replay

if TYPE_CHECKING:
    from .report import RunReport

CONFIG_ENV, LAKE_ENV = "CDC_CONFIG", "CDC_LAKE"
_download_dir: Path | None = None


def config_file(args: Mapping[str, Any] | None = None, default: str | Path = "config.json") -> Path:
    """The config a notebook starts from: `--config` in `args`, else $CDC_CONFIG, else `default`."""
    chosen = (args or {}).get("config") or os.environ.get(CONFIG_ENV) or default
    return Path(str(chosen)).expanduser().resolve()


def lake_url(config: str | Path, args: Mapping[str, Any] | None = None) -> str:
    """The lake a notebook opens first: `--lake` in `args`, else $CDC_LAKE, else the lake `config` names."""
    chosen = (args or {}).get("lake") or os.environ.get(LAKE_ENV)
    try:
        return str(chosen) if chosen else load_config(config).lake.url
    except CdcError:  # no usable config: `open_lake` says why
        return ""


def open_lake(where: str | Path, config: str | Path | None = None) -> Lake:
    """The lake at a folder, `s3://bucket/prefix` or named by a config file (read-only use).

    When `where` is the lake `config` names, the config's S3 settings (endpoint, region, profile) are used.
    """
    where = str(where).strip()
    if config is not None and Path(config).is_file():
        named = load_config(config).lake
        if where in ("", named.url):
            return make_lake(named)
    if where.endswith(".json") and Path(where).is_file():
        return make_lake(load_config(where).lake)
    if where.startswith("s3://"):
        bucket, _, prefix = where[len("s3://"):].partition("/")
        prefix = "/".join(part for part in prefix.split("/") if part)
        return make_lake(LakeConfig(url=where.rstrip("/"), bucket=bucket, prefix=prefix))
    if not where:
        raise LakeError(f"No lake given and no config at {config} — type a lake folder or s3://bucket/prefix")
    path = Path(where).expanduser()
    if not path.is_dir():
        raise LakeError(f"The lake {where} is not a folder — give a lake folder, s3://bucket/prefix "
                        "or a config file")
    return LocalLake(path.resolve())


def tables(lake: Lake) -> list[str]:
    """The tables with at least one committed capture in the lake, by name."""
    return sorted({key.split("/")[1] for key in lake.list("manifests/") if key.count("/") == 2
                   and key.endswith(".json")})


def manifests(lake: Lake, table: str) -> list[dict]:
    """The manifests of `table`'s committed captures, oldest first (checked, each read once per process)."""
    return read_manifests(lake, table)


def table_format(config: str | Path, lake: Lake) -> TableFormat | None:
    """The Delta/Iceberg table format of `config`, when it names one and `lake` is its lake (else None)."""
    try:
        loaded = load_config(config)
    except CdcError:
        return None
    if loaded.table_format is None or loaded.lake.url != lake.url:
        return None
    return make_format(loaded.table_format, loaded.lake)


@dataclass(frozen=True)
class AsOf:
    """A table rebuilt as of a run, and how it compares with the latest full load."""

    table: str
    run_id: str
    rows: int
    preview: pa.Table  # the first `limit` rows, ordered by key
    latest_rows: int
    since: ChangeSet  # from this run's table to the latest full load


def changes(lake: Lake, table: str, run_ids: Iterable[str] | None = None, *, ops: Iterable[str] | None = None,
            key: str = "") -> pa.Table:
    """The change rows of the chosen runs (default: all), optionally only `ops` and keys containing `key`."""
    found = committed_runs(lake, table)  # as `read_changes`: only the runs on the log
    files = [local_file(lake, manifest_file(m, "cdc")) for m in with_changes(found, run_ids)]
    pk = found[-1]["pk"] if found else []
    return _read_changes(files, pk, ops, key)


def preview_file(report: RunReport, table: str) -> Path | None:
    """The changes.parquet a dry run staged for `table`, or None when it staged no change rows."""
    found = next((t for t in report.tables if t.table == table), None)
    path = found.preview / "changes.parquet" if found and found.preview else None
    return path if path is not None and path.is_file() else None


def preview_changes(report: RunReport, table: TableConfig, *, ops: Iterable[str] | None = None,
                    key: str = "") -> pa.Table:
    """The change rows a dry run staged for `table` (empty when it has none), filtered like `changes`."""
    path = preview_file(report, table.name)
    return _read_changes([path] if path else [], list(table.pk), ops, key)


def busiest_keys(lake: Lake, table: str, limit: int = 500) -> list[str]:
    """Keys of `table` with the most change rows first (composite keys joined by "/")."""
    found = manifests(lake, table)
    files = [local_file(lake, manifest_file(m, "cdc")) for m in found if m.get("has_changes")]
    return _busiest(files, found[-1]["pk"], limit) if files else []


def preview_keys(report: RunReport, table: TableConfig, limit: int = 500) -> list[str]:
    """The keys a dry run staged changes for (composite keys joined by "/")."""
    path = preview_file(report, table.name)
    return _busiest([path], list(table.pk), limit) if path else []


def as_of(lake: Lake, table: str, run_id: str | None = None, *, limit: int = 10_000) -> AsOf:
    """`table` rebuilt as of `run_id` (default: the latest) with the core's replay, compared with the full load."""
    found = manifests(lake, table)
    pk = found[-1]["pk"] if found else []
    with tempfile.TemporaryDirectory(prefix="cdc-explore-") as tmp:
        folder = Path(tmp)
        with closing(connect()) as con:
            rebuilt = replay(lake, table, folder / "as_of.parquet", as_of=run_id)
            latest = lake.local(full_load_key(table), folder)
            since = diff(rebuilt.path, latest, pk, con=con)
            head = con.sql(f"SELECT * FROM {parquet_source([rebuilt.path])} LIMIT {int(limit)}").to_arrow_table()
        latest_file = pq.ParquetFile(latest)
        latest_rows, names = latest_file.metadata.num_rows, latest_file.schema_arrow.names
    order = [c for c in names if c in head.column_names] + [c for c in head.column_names if c not in names]
    head = head.select(order)  # the table's own column order (manifests list columns by name)
    return AsOf(table=table, run_id=rebuilt.run_id, rows=rebuilt.rows, preview=head, latest_rows=latest_rows,
                since=since)


def _read_changes(files: list[Path], pk: list[str], ops: Iterable[str] | None, key: str) -> pa.Table:
    filters = []
    if ops is not None:
        filters.append(f"op IN ({', '.join(literal(o) for o in ops) or 'NULL'})")
    if key.strip() and pk:
        text = literal(key.strip().lower())
        filters.append("(" + " OR ".join(f"contains(lower(CAST({quote(k)} AS VARCHAR)), {text})" for k in pk) + ")")
    return change_rows(files, pk, "WHERE " + " AND ".join(filters) if filters else "")


def _busiest(files: list[Path], pk: list[str], limit: int) -> list[str]:
    joined = " || '/' || ".join(f"CAST({quote(k)} AS VARCHAR)" for k in pk)
    with closing(connect()) as con:
        rows = con.execute(f"SELECT {joined} AS k FROM {parquet_source(files)} GROUP BY k ORDER BY count(*) DESC, k "
                           f"LIMIT {int(limit)}").fetchall()
    return [r[0] for r in rows]




def local_file(lake: Lake, key: str) -> Path:
    """A local path of an unchanging lake file: the file itself, or a copy cached for this process."""
    global _download_dir
    if isinstance(lake, LocalLake):
        return lake.local(key, Path(tempfile.gettempdir()))
    if _download_dir is None:
        _download_dir = Path(tempfile.mkdtemp(prefix="cdc-explore-cache-"))
        atexit.register(shutil.rmtree, _download_dir, True)
    folder = _download_dir / str(abs(hash(lake.url)))
    path = folder.joinpath(*key.split("/"))
    return path if path.is_file() else lake.local(key, folder)
