"""Read what the lake captured: runs, change rows, a key's history, a table as of a run — for the notebooks.

Nothing here writes to the lake. Every function takes a `Lake` (`open_lake` makes one from a config file, a folder
or `s3://bucket/prefix`) and a table name, and returns pandas or Arrow tables ready to display. Files of a remote
lake are downloaded once per process into a temporary cache (manifests, CDC and base files never change).

This module holds the pandas frames and altair charts; which lake to open and the Arrow rows come from
`cdc_core.lakeview` (no pandas needed there) and are re-exported here, so `explore.X` is the notebooks' one API.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from contextlib import closing
from pathlib import Path
from typing import Any

from .engines import OPS
from .engines.duckdb.connection import connect, literal, quote
from .errors import CdcError, LakeError
from .extras import missing
from .formats import TableFormat, with_versions
from .lake import Lake
from .lakeview import (
    CONFIG_ENV,
    LAKE_ENV,
    AsOf,
    as_of,
    busiest_keys,
    changes,
    config_file,
    lake_url,
    local_file,
    manifests,
    open_lake,
    parquet_source,
    preview_changes,
    preview_file,
    preview_keys,
    table_format,
    tables,
)
from .layout import manifest_file
from .report import RunReport

try:  # pandas and altair come with the notebooks extra
    import pandas as pd
except ImportError:
    raise missing("cdc_core.explore", "pandas") from None

_CDC_COLUMNS = ("op", "_cdc_run_id", "_cdc_captured_at", "_cdc_changed")


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


def report_counts(report: RunReport) -> pd.DataFrame:
    """One row per table of a run report: table, status, I, U, D, rows, changed_columns, warnings (or the error)."""
    records = [{"table": t.table, "status": t.status, **{op: t.counts.get(op, 0) for op in OPS}, "rows": t.rows,
                "changed_columns": changed_columns_text(t.column_counts),
                "warnings": "; ".join(t.warnings) or (t.error or "")} for t in report.tables]
    return pd.DataFrame.from_records(records, columns=["table", "status", *OPS, "rows", "changed_columns",
                                                      "warnings"])


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
                base = con.sql(f"SELECT * FROM {parquet_source([local_file(lake, manifest_file(m, 'base'))])} WHERE {where}")
                rows = base.to_arrow_table().to_pylist()
                events.append((m["run_id"], pd.Timestamp(m["captured_at"]), "full load", rows[0] if rows else {}))
        files = [local_file(lake, manifest_file(m, "cdc")) for m in found if m.get("has_changes")]
        files += [pending] if pending is not None and pending.is_file() else []
        holding = con.execute(f"SELECT DISTINCT filename FROM {parquet_source(files, filename=True)} WHERE {where}"
                              ).fetchall() if files else []
        for (file,) in holding:  # each file alone: its values in the types that run stored
            for row in con.sql(f"SELECT * FROM {parquet_source([file])} WHERE {where} AND op IN ('I', 'U', 'D')"
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


def _key_values(key: str | Mapping[str, str], pk: list[str]) -> dict[str, str]:
    parts = [key.get(k) for k in pk] if isinstance(key, Mapping) else str(key).split("/", len(pk) - 1)
    if len(parts) != len(pk) or any(p is None for p in parts):
        raise CdcError(f"The key {key!r} does not give every key column ({', '.join(pk)}) — write a composite "
                       "key as a/b or pass a dict")
    return {k: str(p).strip() for k, p in zip(pk, parts, strict=True)}


def _same(a: Any, b: Any) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


__all__ = ["CONFIG_ENV", "LAKE_ENV", "AsOf", "as_of", "busiest_keys", "changed_columns_text", "changes", "config_file",
           "counts_chart", "history_title", "key_history", "lake_url", "manifests", "only_full_load", "open_lake",
           "preview_changes", "preview_file", "preview_keys", "quality", "quality_chart", "report_counts", "run_notes",
           "runs", "table_format", "tables"]
