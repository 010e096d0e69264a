"""Staging one table's capture: bring the local state onto the lake's head, snapshot, diff, seal into the outbox.

The previous snapshot is always the lake's latest committed run of the table: when the local state differs
(a fresh `data_dir`, another writer moved on, a lake that was emptied), `rebase` first makes the lake's state the
committed one (its full load when that matches the run's checksum, else replayed from base + CDC files).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from . import faults
from .config import CdcOptions, TableConfig
from .config.guards import broken
from .engines import said_once, schema_of
from .errors import HeldError, InputError
from .lake import Lake
from .layout import full_load_file
from .outbox import Entry
from .recent import recent_rows
from .replay import replay
from .report import TableReport
from .state import Committed, State

if TYPE_CHECKING:
    from .engines import Engine

log = logging.getLogger("cdc_core")


@dataclass(frozen=True)
class Previous:
    """The snapshot a capture is diffed against: the lake's head run (or a pending entry, in a dry run)."""

    run_id: str
    path: Path
    rows: int


def rebase(state: State, lake: Lake, name: str, top: dict | None, report: TableReport,
           engine: Engine | None = None) -> Committed | None:
    """Make the lake's head run of `name` the committed local state, if it is not already; returns that state."""
    committed = state.committed(name)
    if top is None:
        if committed is not None:
            log.warning("%s: the lake has no run of this table; local run %s is forgotten and the table is "
                        "captured afresh", name, committed.run_id)
            state.forget(name)
        return None
    if committed is not None and committed.run_id == top["run_id"]:
        return committed
    folder = state.root / "tmp" / f"rebase-{name}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        full = full_load_file(top)
        if lake.checksum(full["key"]) == full["sha256"]:
            path = lake.local(full["key"], folder)
        else:  # the full load lags the run (its writer stopped before refreshing it): rebuild the run
            path = replay(lake, name, folder / "replayed.parquet", top=top, engine=engine).path
        adopted = state.adopt(name, top["run_id"], top.get("source_version"), path, top["rows"])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    was = f"local run {committed.run_id}" if committed else "no local state"
    log.info("%s: rebased on the lake's run %s (%s)", name, top["run_id"], was)
    report.rebased = top["run_id"]
    return adopted


def stage(engine: Engine, state: State, table: TableConfig, file: Path, previous: Previous | None, *,
          run_id: str, started: datetime, version: str | None, report: TableReport, dry_run: bool,
          options: CdcOptions) -> Entry | None:
    """Snapshot and diff one table into an outbox entry (a sealed preview in a dry run); None when nothing changed."""
    name, clock = table.name, time.perf_counter()
    folder = state.outbox.start(name, run_id)
    snap = engine.load_snapshot(file, table, folder / "snapshot.parquet",
                                previous=schema_of(previous.path) if previous else None)
    report.rows, clock = snap.rows, lap(report, "snapshot", clock)
    faults.point("after_snapshot", name)
    meta = {"table": name, "run_id": run_id, "token": uuid.uuid4().hex,  # this capture, whoever else picks run_id
            "parent": previous.run_id if previous else None,
            "source_version": version, "rows": snap.rows, "captured_at": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "kind": "full_load", "has_changes": False, "counts": {"I": 0, "U": 0, "D": 0},
            "warnings": snap.warnings, "pk": list(table.pk), "columns": snap.columns, "layouts": snap.layouts,
            "quality": snap.quality}
    if previous is not None and snap.rows == 0 < previous.rows and not table.allow_empty:
        raise InputError(f'Table "{name}": {file.name} has a header but no rows, while the last capture had '
                         f"{previous.rows:,} — a cut download? If the table really was emptied, set "
                         '"allow_empty": true on the table in the config')
    if previous is not None:
        changes = engine.diff(previous.path, snap.path, table, output=folder / "changes.parquet",
                              stamp={"_cdc_run_id": run_id, "_cdc_captured_at": started},
                              changed_columns=options.changed_columns, before_image=options.before_image,
                              details=folder / "details.parquet" if dry_run else None,
                              labels=(f'Table "{name}": the last capture', f'Table "{name}": {file.name}'))
        faults.point("after_diff", name)
        clock = lap(report, "diff", clock)
        warnings = said_once(changes.warnings, snap.widenings())  # a widening is said once, with its example
        report.counts, report.warnings = dict(changes.counts), warnings
        report.column_counts = dict(changes.column_counts)
        if not changes and not changes.schema_changed:
            if dry_run:  # the preview remembers that nothing changed (publishing it records the version)
                for leftover in folder.iterdir():
                    leftover.unlink()
                state.outbox.seal_preview(folder, {**meta, "kind": "unchanged"})
            else:
                state.outbox.abandon(folder)
            return None
        if changes.held_keys is not None:  # date_field mode: what the change set does not capture stays as it was
            engine.hold_back(previous.path, snap.path, changes.held_keys, table.pk, folder / "held.parquet")
            os.replace(folder / "held.parquet", snap.path)
            changes.held_keys.unlink()
        if not changes:
            (folder / "changes.parquet").unlink()
        meta.update(kind="changes", has_changes=bool(changes), counts=dict(changes.counts), warnings=warnings,
                    changed_columns=dict(changes.column_counts))
        reason = broken(table.guards, previous_rows=previous.rows, rows=snap.rows, counts=changes.counts,
                        recent=recent_rows(state.root, name))
        if reason and not (snap.rows == 0 and table.allow_empty):  # emptied on purpose
            held = (f'Table "{name}": held — {reason}; nothing was published — publish it with --accept-held '
                    f'{name} (or the TUI\'s upload screen), or change "guards" in the config')
            meta["held"] = held  # the preview shows it; publishing the preview needs the same acceptance
            if not dry_run:  # kept as it was diffed: --accept-held publishes exactly this change set
                state.outbox.hold(folder, meta)
                raise HeldError(held)
    if dry_run:
        return state.outbox.seal_preview(folder, meta)
    entry = state.outbox.seal(folder, meta)
    lap(report, "seal", clock)
    faults.point("after_stage", name)
    return entry


def lap(report: TableReport, stage: str, since: float) -> float:
    """Record the seconds a stage took (the run report and the debug log show them); returns the new lap start."""
    now = time.perf_counter()
    report.timings[stage] = round(report.timings.get(stage, 0) + now - since, 3)
    return now
