"""Read what the lake captured: runs, change rows, a key's history, a table as of a run — for the notebooks.

Nothing here writes to the lake. Every function takes a `Lake` (`open_lake` makes one from a config file, a folder
or `s3://bucket/prefix`) and a table name, and returns pandas or Arrow tables ready to display. Files of a remote
lake are downloaded once per process into a temporary cache (manifests, CDC and base files never change).
"""

from __future__ import annotations

import atexit
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .config import LakeConfig, TableConfig, load_config
from .engines import OPS, ChangeSet
from .engines.duckdb import diff
from .engines.duckdb.connection import connect, literal, quote
from .errors import CdcError, LakeError
from .extras import missing
from .formats import TableFormat, make_format, with_versions
from .lake import Lake, LocalLake, make_lake, read_manifests
from .layout import full_load_key, manifest_file
from .pipeline import RunReport
from .reader import committed_runs
from .replay import replay

try:  # pandas and altair come with the notebooks extra
    import pandas as pd
except ImportError:
    raise missing("cdc_core.explore", "pandas") from None

CONFIG_ENV, LAKE_ENV = "CDC_CONFIG", "CDC_LAKE"
_CDC_COLUMNS = ("op", "_cdc_run_id", "_cdc_captured_at", "_cdc_changed")
_download_dir: Path | None = None


@dataclass(frozen=True)
class AsOf:
    """A table rebuilt as of a run, and how it compares with the latest full load."""

    table: str
    run_id: str
    rows: int
    preview: pa.Table  # the first `limit` rows, ordered by key
    latest_rows: int
    since: ChangeSet  # from this run's table to the latest full load


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


def runs(lake: Lake, table: str, table_format: TableFormat | None = None) -> pd.DataFrame:
    """One row per committed capture: run_id, captured_at, kind, source_version, I, U, D, rows, changed_columns
    (`column rows, …` of its updates, most changed first), warnings; with a `table_format` (see `table_format`),
    also table_format and table_version (the Delta version or Iceberg snapshot holding the run's state)."""
    found = with_versions(manifests(lake, table), table_format)
    formats = any(m.get("table_format") for m in found)
    records = [{"run_id": m["run_id"], "captured_at": pd.Timestamp(m["captured_at"]), "kind": m["kind"],
                "source_version": m.get("source_version"), **{op: m["counts"].get(op, 0) for op in OPS},
                "rows": m["rows"], "changed_columns": changed_columns_text(m.get("changed_columns") or {}),
                **({"table_format": (m.get("table_format") or {}).get("name"),
                    "table_version": (m.get("table_format") or {}).get("version")} if formats else {}),
                "warnings": "; ".join(m.get("warnings", []))} for m in found]
    columns = ["run_id", "captured_at", "kind", "source_version", *OPS, "rows", "changed_columns",
               *(["table_format", "table_version"] if formats else []), "warnings"]
    return pd.DataFrame.from_records(records, columns=columns)


def changed_columns_text(counts: Mapping[str, int]) -> str:
    """`qtdePontos 156, DtAtualizacao 156, flTwitch 12`: the updated rows per column, most changed first."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{column} {rows:,}" for column, rows in ranked)


def counts_chart(frame: pd.DataFrame, x: str = "run_id"):
    """A stacked bar chart (altair) of I/U/D counts per `x` (a run id, or a table for a preview); None when no
    row of `frame` has a change to draw (a table with only its full load: say so instead of an empty chart).

    A full-load run (`kind` "full_load") is not an empty bar: it is labelled "full load · N rows" where it stands.
    """
    try:
        import altair as alt
    except ImportError:
        raise missing("cdc_core.explore", "altair") from None

    loads = frame["kind"] == "full_load" if "kind" in frame else pd.Series(False, index=frame.index)
    if not frame.loc[~loads, list(OPS)].to_numpy().any():
        return None
    long = frame.melt(id_vars=[x], value_vars=list(OPS), var_name="op", value_name="count")
    long = long[long[x].isin(frame.loc[~loads, x])]
    names = {"I": "insert", "U": "update", "D": "delete"}
    long["change"] = long["op"].map(names)
    axis_x = alt.X(f"{x}:N", title="run (UTC)" if x == "run_id" else x, sort=frame[x].tolist(),
                   scale=alt.Scale(domain=frame[x].tolist()), axis=alt.Axis(labelAngle=-40))
    bars = alt.Chart(long).mark_bar().encode(
        x=axis_x, y=alt.Y("count:Q", title="rows", axis=alt.Axis(format=",d", tickMinStep=1)),
        color=alt.Color("change:N", sort=list(names.values()),
                        scale=alt.Scale(domain=list(names.values()), range=["#2ca02c", "#1f77b4", "#d62728"])),
        tooltip=[x, "change", "count"])
    if loads.any():
        marks = frame.loc[loads, [x, "rows"]].assign(label=lambda f: f["rows"].map("full load · {:,} rows".format),
                                                     count=0)
        text = alt.Chart(marks).mark_text(angle=270, align="left", baseline="middle", dx=6, fontSize=12,
                                          color="#444")
        labels = text.encode(x=axis_x, y=alt.Y("count:Q"), text="label:N", tooltip=[x, "label"])
        bars = alt.layer(bars, labels)
    return bars.properties(height=220, width="container")


def only_full_load(run_list: pd.DataFrame, table: str) -> str:
    """What the notebook says instead of a chart when a table has no change set yet."""
    first = run_list.iloc[0] if len(run_list) else None
    loaded = f" (run {first['run_id']}, {first['rows']:,} rows)" if first is not None else ""
    return (f"`{table}` has only its full load so far{loaded}: inserts, updates and deletes are counted from the "
            "next capture on.")


def history_title(table: str, key: str, history: pd.DataFrame) -> str:
    """The line above a key's history: how many versions, or that the lake has never held the key."""
    if history.empty:
        return (f"`{key}` is not in the lake's `{table}`: no full load and no change row has this key — check "
                "it (a composite key is written a/b)")
    return f"`{key}`: **{history['run_id'].nunique()}** version(s) — old → new per column"


def changes(lake: Lake, table: str, run_ids: Iterable[str] | None = None, *, ops: Iterable[str] | None = None,
            key: str = "") -> pa.Table:
    """The change rows of the chosen runs (default: all), optionally only `ops` and keys containing `key`."""
    chosen = None if run_ids is None else set(run_ids)
    found = committed_runs(lake, table)  # as `read_changes`: only the runs on the log
    files = [_local(lake, manifest_file(m, "cdc")) for m in found if m.get("has_changes") and
             (chosen is None or m["run_id"] in chosen)]
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


def report_counts(report: RunReport) -> pd.DataFrame:
    """One row per table of a run report: table, status, I, U, D, rows, changed_columns, warnings (or the error)."""
    records = [{"table": t.table, "status": t.status, **{op: t.counts.get(op, 0) for op in OPS}, "rows": t.rows,
                "changed_columns": changed_columns_text(t.column_counts),
                "warnings": "; ".join(t.warnings) or (t.error or "")} for t in report.tables]
    return pd.DataFrame.from_records(records, columns=["table", "status", *OPS, "rows", "changed_columns",
                                                      "warnings"])


def busiest_keys(lake: Lake, table: str, limit: int = 500) -> list[str]:
    """Keys of `table` with the most change rows first (composite keys joined by "/")."""
    found = manifests(lake, table)
    files = [_local(lake, manifest_file(m, "cdc")) for m in found if m.get("has_changes")]
    return _busiest(files, found[-1]["pk"], limit) if files else []


def preview_keys(report: RunReport, table: TableConfig, limit: int = 500) -> list[str]:
    """The keys a dry run staged changes for (composite keys joined by "/")."""
    path = preview_file(report, table.name)
    return _busiest([path], list(table.pk), limit) if path else []


def key_history(lake: Lake, table: str, key: str | Mapping[str, str], *, pending: Path | None = None
                ) -> pd.DataFrame:
    """Every change of one key across runs, in order: run_id, captured_at, op, column, old, new.

    The base (first full load) gives the starting row (op "full load"); an `I` lists every column (old empty),
    a `U` only the columns that differ from the key's previous version, a `D` every column (new empty).
    `pending` adds a dry run's staged changes.parquet after the lake's runs. Values are shown as text.
    """
    found = manifests(lake, table)
    if not found:
        raise LakeError(f'The lake {lake.url} has no captures of table "{table}" — choose another table')
    pk = found[-1]["pk"]
    wanted = _key_values(key, pk)
    where = " AND ".join(f"CAST({quote(k)} AS VARCHAR) = {literal(v)}" for k, v in wanted.items())
    columns = {m["run_id"]: set(m["columns"]) for m in found}
    events: list[tuple[str, Any, str, dict]] = []
    with closing(connect()) as con:
        for m in found:
            if m["kind"] == "full_load":
                base = con.sql(f"SELECT * FROM {_parquet([_local(lake, manifest_file(m, 'base'))])} WHERE {where}")
                rows = base.to_arrow_table().to_pylist()
                events.append((m["run_id"], pd.Timestamp(m["captured_at"]), "full load", rows[0] if rows else {}))
        files = [_local(lake, manifest_file(m, "cdc")) for m in found if m.get("has_changes")]
        files += [pending] if pending is not None and pending.is_file() else []
        holding = con.execute(f"SELECT DISTINCT filename FROM {_parquet(files, filename=True)} WHERE {where}"
                              ).fetchall() if files else []
        for (file,) in holding:  # each file alone: its values in the types that run stored
            for row in con.sql(f"SELECT * FROM {_parquet([file])} WHERE {where} AND op IN ('I', 'U', 'D')"
                               ).to_arrow_table().to_pylist():  # B rows (before-images) repeat what is known
                events.append((row["_cdc_run_id"], pd.Timestamp(row["_cdc_captured_at"]), row["op"], row))
    events.sort(key=lambda e: (e[0], e[2] != "full load"))
    out, state = [], {}
    for run_id, captured_at, op, row in events:
        cols = [c for c in row if c in columns.get(run_id, row) and c not in pk and c not in _CDC_COLUMNS]
        if op == "full load" and not row:
            state = {}
            continue
        if op == "D":
            pairs = [(c, row.get(c, state.get(c)), None) for c in cols]
            state = {}
        else:
            old = state if op == "U" or (op == "full load" and state) else {}
            pairs = [(c, old.get(c), row.get(c)) for c in cols if op == "I" or not old or
                     not _same(old.get(c), row.get(c))]
            state = {c: row.get(c) for c in cols}
        for column, before, after in pairs or [(None, None, None)]:
            out.append({"run_id": run_id, "captured_at": captured_at, "op": op, "column": column,
                        "old": None if before is None else str(before),
                        "new": None if after is None else str(after)})
    frame = pd.DataFrame.from_records(out, columns=["run_id", "captured_at", "op", "column", "old", "new"])
    return frame.astype({"column": object, "old": object, "new": object}).replace({float("nan"): None})


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
            head = con.sql(f"SELECT * FROM {_parquet([rebuilt.path])} LIMIT {int(limit)}").to_arrow_table()
        latest_file = pq.ParquetFile(latest)
        latest_rows, names = latest_file.metadata.num_rows, latest_file.schema_arrow.names
    order = [c for c in names if c in head.column_names] + [c for c in head.column_names if c not in names]
    head = head.select(order)  # the table's own column order (manifests list columns by name)
    return AsOf(table=table, run_id=rebuilt.run_id, rows=rebuilt.rows, preview=head, latest_rows=latest_rows,
                since=since)


def quality(lake: Lake, table: str) -> pd.DataFrame:
    """Each run's data-quality numbers per column (from its manifest): run_id, captured_at, column, rows, nulls,
    null_ratio, distinct, min, max. Runs captured before cdc_core recorded them are left out."""
    out = []
    for m in manifests(lake, table):
        for column, numbers in (m.get("quality") or {}).items():
            nulls = numbers.get("nulls") or 0
            out.append({"run_id": m["run_id"], "captured_at": pd.Timestamp(m["captured_at"]), "column": column,
                        "rows": m["rows"], "nulls": nulls, "null_ratio": nulls / m["rows"] if m["rows"] else 0.0,
                        "distinct": numbers.get("distinct"), "min": numbers.get("min"), "max": numbers.get("max")})
    columns = ["run_id", "captured_at", "column", "rows", "nulls", "null_ratio", "distinct", "min", "max"]
    return pd.DataFrame.from_records(out, columns=columns)


def quality_chart(frame: pd.DataFrame):
    """Two small line charts per column (altair), one row per column: its share of NULLs and its distinct values
    across runs; None when fewer than two runs recorded quality numbers (one point is no trend)."""
    import altair as alt

    if frame.empty or frame["run_id"].nunique() < 2:
        return None
    x = alt.X("run_id:O", title=None, axis=alt.Axis(labelAngle=-40, labelOverlap=True))
    tooltip = ["run_id", "captured_at:T", "rows:Q", "nulls:Q", alt.Tooltip("null_ratio:Q", format=".2%"),
               "distinct:Q", "min:N", "max:N"]
    base = alt.Chart(frame).mark_line(point=True).properties(width=260, height=45)
    nulls = base.encode(x=x, y=alt.Y("null_ratio:Q", title=None, axis=alt.Axis(format=".0%", tickCount=3)),
                        tooltip=tooltip).facet(row=alt.Row("column:N", title=None, header=alt.Header(
                            labelAngle=0, labelAlign="left")), title="NULL share")
    distinct = base.encode(x=x, y=alt.Y("distinct:Q", title=None, axis=alt.Axis(format="~s", tickCount=3),
                                        scale=alt.Scale(zero=False)), color=alt.value("#e45756"),
                           tooltip=tooltip).facet(row=alt.Row("column:N", title=None, header=alt.Header(
                               labels=False)), title="distinct values (approximate)").resolve_scale(y="independent")
    return alt.hconcat(nulls, distinct)


def run_notes(lake: Lake, table: str) -> pd.DataFrame:
    """Schema changes (from consecutive manifests' columns) and data-quality warnings, per run."""
    out, before = [], None
    for m in manifests(lake, table):
        at, cols = pd.Timestamp(m["captured_at"]), m["columns"]
        notes = []
        if before is not None:
            notes += [("schema", f'column "{c}" added ({t})') for c, t in cols.items() if c not in before]
            notes += [("schema", f'column "{c}" removed (was {t})') for c, t in before.items() if c not in cols]
            notes += [("schema", f'column "{c}" changed type {before[c]} → {t}') for c, t in cols.items()
                      if c in before and before[c] != t]
        notes += [("data quality", w) for w in m.get("warnings", []) if not w.startswith(("column ", "column("))]
        out += [{"run_id": m["run_id"], "captured_at": at, "kind": kind, "note": note} for kind, note in notes]
        before = cols
    return pd.DataFrame.from_records(out, columns=["run_id", "captured_at", "kind", "note"])


def _read_changes(files: list[Path], pk: list[str], ops: Iterable[str] | None, key: str) -> pa.Table:
    if not files:
        return pa.table({"op": pa.array([], pa.string())})
    filters = []
    if ops is not None:
        filters.append(f"op IN ({', '.join(literal(o) for o in ops) or 'NULL'})")
    if key.strip() and pk:
        text = literal(key.strip().lower())
        filters.append("(" + " OR ".join(f"contains(lower(CAST({quote(k)} AS VARCHAR)), {text})" for k in pk) + ")")
    order = ", ".join(["_cdc_run_id", *(quote(k) for k in pk)])
    with closing(connect()) as con:
        return con.sql(f"SELECT * FROM {_parquet(files)} {'WHERE ' + ' AND '.join(filters) if filters else ''}"
                       f" ORDER BY {order}").to_arrow_table()


def _busiest(files: list[Path], pk: list[str], limit: int) -> list[str]:
    joined = " || '/' || ".join(f"CAST({quote(k)} AS VARCHAR)" for k in pk)
    with closing(connect()) as con:
        rows = con.execute(f"SELECT {joined} AS k FROM {_parquet(files)} GROUP BY k ORDER BY count(*) DESC, k "
                           f"LIMIT {int(limit)}").fetchall()
    return [r[0] for r in rows]


def _key_values(key: str | Mapping[str, str], pk: list[str]) -> dict[str, str]:
    parts = [key.get(k) for k in pk] if isinstance(key, Mapping) else str(key).split("/", len(pk) - 1)
    if len(parts) != len(pk) or any(p is None for p in parts):
        raise CdcError(f"The key {key!r} does not give every key column ({', '.join(pk)}) — write a composite "
                       "key as a/b or pass a dict")
    return {k: str(p).strip() for k, p in zip(pk, parts, strict=True)}


def _same(a: Any, b: Any) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def _parquet(files: list[Path], *, filename: bool = False) -> str:
    listed = ", ".join(literal(str(p)) for p in files)
    return f"read_parquet([{listed}], union_by_name=true{', filename=true' if filename else ''})"


def _local(lake: Lake, key: str) -> Path:
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
