"""What the screens show, read from cdc_core's state, lake and reports (called from thread workers)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cdc_core.config import Config, TableConfig
from cdc_core.errors import CdcError
from cdc_core.lake import make_lake, read_manifests
from cdc_core.pipeline import RunReport, TableReport
from cdc_core.state import Committed, State

HISTORY_RUNS = 24  # how many recent captures the history chart shows
OPS = ("I", "U", "D")
META_COLUMNS = ("_cdc_run_id", "_cdc_captured_at", "_cdc_changed")  # the same on every row of a change set: not shown in the grid


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
    found = []
    for table in config.tables:
        try:
            committed = state.committed(table.name)
            pending = tuple(entry.run_id for entry in state.pending(table.name))
            history = tuple(read_manifests(lake, table.name)[-HISTORY_RUNS:])
        except CdcError as exc:
            found.append(TableOverview(table, error=str(exc)))
            continue
        found.append(TableOverview(table, committed, pending, history))
    return found


def read_preview(report: TableReport) -> pa.Table | None:
    """What a dry run would write for a table, as Arrow; None when there is nothing to show.

    The change rows (without the per-run metadata columns), or on a first capture the whole snapshot that becomes
    the table's full load.
    """
    if report.preview is None:
        return None
    if (changes := report.preview / "changes.parquet").is_file():
        rows = pq.read_table(changes)
        return rows.drop_columns([c for c in META_COLUMNS if c in rows.column_names])
    if report.status == "full_load" and (snapshot := report.preview / "snapshot.parquet").is_file():
        return pq.read_table(snapshot)
    return None


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


def upload_totals(report: RunReport) -> tuple[int, int]:
    """(files, bytes) a confirmed preview writes into the lake; manifests count as files, their size is unknown."""
    uploads = [u for t in report.tables if t.status != "failed" for u in t.uploads]
    return len(uploads), sum(u.bytes for u in uploads)
