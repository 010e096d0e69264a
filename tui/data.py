"""What the screens show, read from cdc_core's state, lake and reports (called from thread workers)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cdc_core.chain import head, recent_runs
from cdc_core.config import Config, TableConfig
from cdc_core.engines.duckdb.connection import connect, literal, quote
from cdc_core.engines.duckdb.law import text_of
from cdc_core.errors import CdcError
from cdc_core.formats import make_format, with_versions
from cdc_core.jsonfile import read_json
from cdc_core.lake import make_lake
from cdc_core.report import RunReport, TableReport
from cdc_core.state import Committed, State
from cdc_core.types import read_layouts

HISTORY_RUNS = 24  # how many recent captures the history chart shows
OPS = ("I", "U", "D")
# per-run metadata (the same on every row) and the lake's own `_cdc_changed`: not shown in the grid
META_COLUMNS = ("_cdc_run_id", "_cdc_captured_at", "_cdc_changed")
CHANGED, BEFORE = "_cdc_tui_changed", "_cdc_tui_before"  # hidden: a U row's changed columns and their old values
HIDDEN = (CHANGED, BEFORE)


def utcnow() -> datetime:
    """The current UTC time (one place, so tests can freeze what the screens display)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class TableOverview:
    """One configured table as the Tables screen shows it: last capture, outbox, recent history."""

    table: TableConfig
    committed: Committed | None = None
    pending: tuple[str, ...] = ()
    history: tuple[dict, ...] = ()
    error: str | None = None

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def last(self) -> dict | None:
        """The manifest of the committed capture (its counts), when the lake has it."""
        if self.committed is None:
            return None
        return next((m for m in reversed(self.history) if m["run_id"] == self.committed.run_id), None)


def load_overview(config: Config) -> list[TableOverview]:
    """Each table's committed capture, pending outbox runs and recent manifests (local state + lake I/O)."""
    state, lake = State(config.data_dir), make_lake(config.lake)
    try:
        table_format = make_format(config.table_format, config.lake)
    except CdcError:  # its library is missing: the captures show without format versions
        table_format = None
    found = []
    for table in config.tables:
        try:
            committed = state.committed(table.name)
            pending = tuple(entry.run_id for entry in state.outbox.pending(table.name))
            top = head(lake, table.name, repair=False)
            recent = recent_runs(lake, table.name, top, HISTORY_RUNS) if top else []
            history = tuple(with_versions(recent, table_format) if recent else recent)
        except CdcError as exc:
            found.append(TableOverview(table, error=str(exc)))
            continue
        found.append(TableOverview(table, committed, pending, history))
    return found


def read_preview(report: TableReport, state: State, pk: Sequence[str]) -> pa.Table | None:
    """What a dry run would write for a table, as Arrow, with what the detail pane needs; None when nothing.

    The change rows with `op` and the key columns first (without the per-run metadata and the before-image `B`
    rows), plus two hidden columns: `CHANGED`, the changed columns of each U row (from the preview's
    details.parquet), and `BEFORE`, each U row's previous values of the columns that changed in any row, looked up
    by key in the snapshot the preview was diffed against (read once, here, in the worker thread). On a first
    capture: the whole snapshot that becomes the table's full load, its key columns first.
    """
    if report.preview is None:
        return None
    if (changes := report.preview / "changes.parquet").is_file():
        rows = pq.read_table(changes)
        if "B" in pc.unique(rows["op"]).to_pylist():  # before-images: the pane shows old values for every table
            rows = rows.filter(pc.not_equal(rows["op"], "B"))
        rows = _lead(rows.drop_columns([c for c in META_COLUMNS if c in rows.column_names]), ["op", *pk])
        return _with_before(rows, report, state, pk)
    if report.status == "full_load" and (snapshot := report.preview / "snapshot.parquet").is_file():
        return _lead(pq.read_table(snapshot), pk)
    return None


def previous_snapshot(state: State, table: str, parent: str | None) -> Path | None:
    """The snapshot a preview was diffed against (its `parent` run): the committed one or a pending outbox run's."""
    if parent is None:
        return None
    try:
        committed = state.committed(table)
    except CdcError:  # its snapshot is missing: the old values are unknown, the preview itself is still fine
        committed = None
    if committed is not None and committed.run_id == parent:
        return committed.snapshot
    entry = next((e for e in state.outbox.pending(table) if e.run_id == parent), None)
    path = state.snapshot_of(entry) if entry is not None else None
    return path if path is not None and path.is_file() else None


def _lead(rows: pa.Table, first: Sequence[str]) -> pa.Table:
    """`rows` with the `first` columns leading (op and the key: the grid pins them), the others in their order."""
    lead = [c for c in first if c in rows.column_names]
    return rows.select(lead + [c for c in rows.column_names if c not in lead])


def _with_before(rows: pa.Table, report: TableReport, state: State, pk: Sequence[str]) -> pa.Table:
    """Add `CHANGED` and `BEFORE` to the change rows (one DuckDB pass joining details and the previous snapshot)."""
    folder = report.preview
    details = folder / "details.parquet"
    meta = read_json(folder / "entry.json") or {}
    previous = previous_snapshot(state, report.table, meta.get("parent"))
    keyed = pa.table({"__n": pa.array(range(rows.num_rows), pa.int64()), **{c: rows[c] for c in ("op", *pk)}})
    select, joins = ["r.__n"], []
    if details.is_file():
        on = " AND ".join(f"d.{quote(k)} = r.{quote(k)}" for k in pk)
        joins.append(f"LEFT JOIN read_parquet({literal(str(details))}) d ON r.op = 'U' AND {on}")
        select.append(f"COALESCE(d._cdc_changed, []::VARCHAR[]) AS {CHANGED}")
    else:
        select.append(f"[]::VARCHAR[] AS {CHANGED}")
    with closing(connect()) as con:
        relation = f"read_parquet({literal(str(previous))})" if previous is not None else ""
        kinds = {row[0]: row[1] for row in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
                 } if relation else {}
        if wanted := [c for c in report.column_counts if c in kinds and c not in pk]:
            layouts = read_layouts(previous)
            # keys compare as the text the diff compared them on (`text_of`, as compare.py does)
            keys = ", ".join(f"{text_of(quote(k), kinds[k], layouts.get(k))} AS __k{i}" for i, k in enumerate(pk))
            values = ", ".join(f"{quote(c)} := {quote(c)}" for c in wanted)
            on = " AND ".join(f"p.__k{i} = r.{quote(k)}" for i, k in enumerate(pk))
            joins.append(f"LEFT JOIN (SELECT {keys}, struct_pack({values}) AS __v FROM {relation}) p "
                         f"ON r.op = 'U' AND {on}")
            select.append(f"p.__v AS {BEFORE}")
        con.register("__rows", keyed)
        found = con.sql(f"SELECT {', '.join(select)} FROM __rows r {' '.join(joins)} ORDER BY r.__n").to_arrow_table()
    for name in HIDDEN:
        if name in found.column_names:
            rows = rows.append_column(name, found[name])
    return rows


@dataclass(frozen=True)
class RowDetail:
    """One grid row as the detail pane shows it: for a U row each changed column as (column, old, new)."""

    op: str | None  # None: a row of a first capture's full load
    key: tuple[Any, ...]
    values: tuple[tuple[str, Any, Any], ...]  # U: (column, old, new); I and full load: (column, None, new); D: (…, old, None)
    old_known: bool = True  # False when the previous snapshot could not be read (U rows only)


def row_detail(row: dict[str, Any], pk: Sequence[str]) -> RowDetail:
    """What changed in one row of the preview (a dict from `read_preview`'s table)."""
    op = row.get("op")
    key = tuple(row.get(k) for k in pk)
    columns = [c for c in row if c not in (*pk, "op", *HIDDEN)]
    if op == "U":
        before = row.get(BEFORE)
        changed = row.get(CHANGED) or []
        values = tuple((c, (before or {}).get(c), row.get(c)) for c in changed)
        return RowDetail(op, key, values, old_known=before is not None or not changed)
    if op == "D":
        return RowDetail(op, key, tuple((c, row.get(c), None) for c in columns))
    return RowDetail(op, key, tuple((c, None, row.get(c)) for c in columns))


def filter_changes(rows: pa.Table, op: str, search: str, keys: Sequence[str]) -> pa.Table:
    """The rows of one op ("" for all) whose key contains `search` (case-insensitive), computed by Arrow."""
    mask = pc.equal(rows["op"], op) if op else None
    if search:
        hits = [pc.fill_null(pc.match_substring(pc.cast(rows[k], pa.string()), search, ignore_case=True), False)
                for k in keys if k in rows.column_names]
        if hits:
            hit = hits[0]
            for more in hits[1:]:
                hit = pc.or_(hit, more)
            mask = hit if mask is None else pc.and_(mask, hit)
    return rows if mask is None else rows.filter(mask)


def to_publish(report: RunReport) -> list[str]:
    """The tables a confirmed preview publishes: every previewed table that did not fail."""
    return [t.table for t in report.tables if t.status != "failed"]


def held_tables(report: RunReport) -> dict[str, str]:
    """The previewed tables a guard held, with the guard's numbers (`13 rows changed of 250 (5%), more than …`):
    published only when accepted."""
    return {t.table: re.sub(r'^Table "[^"]*": held — |; nothing was published.*$', "", t.error or "")
            for t in report.tables if t.status == "held"}


def upload_totals(report: RunReport) -> tuple[int, int]:
    """(files, bytes) a confirmed preview writes into the lake; manifests count as files, their size is unknown."""
    uploads = [u for t in report.tables if t.status != "failed" for u in t.uploads]
    return len(uploads), sum(u.bytes for u in uploads)
