"""Publishing a staged entry: commit it into the lake, bring the projections (full load, table format) up to the
head, tidy the lake at a checkpoint, then commit it locally; and the one rule that tells whether the winner of a
lost race holds the same data."""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from . import faults
from .chain import head
from .commit import LostRace, publish, uploads
from .config import TableConfig
from .cycle import Cycle
from .errors import HeldError, LakeError, StateError
from .logs import redact
from .outbox import Entry
from .projections import catch_up, refresh_full_load
from .recent import remember_rows
from .report import TableReport
from .retention import tidy
from .stage import lap, rebase

log = logging.getLogger("cdc_core")
CLAIM_WAIT = 60.0  # seconds a writer that lost waits for the winner's run to be committed


@dataclass(frozen=True)
class Winner:
    """The run that won a race with exactly the lost run's data: nothing is missing."""

    run_id: str
    version: str | None = None  # the source version both captured, when that alone told (nothing was diffed)

    def __str__(self) -> str:
        if self.version:
            return f"another writer captured source version {self.version} first (run {self.run_id})"
        return f"another writer committed the same data first (run {self.run_id})"


def winner_with_same_data(cycle: Cycle, table: TableConfig, report: TableReport, lost: LostRace, *,
                          diff: bool = True) -> Winner | None:
    """The run another writer committed on this run's parent, if it holds exactly the data of this writer's lost
    run: it captured the same source version, or (with `diff`) its table diffs empty against the lost run's kept
    snapshot — the diff first moves the local state to the winner's run, and a writer that wrote the same run id
    first is given a little time to commit. A run that was not kept is never compared. The winner's data may also
    be newer or older than ours: then None, the table fails, and the next cycle rebases and fetches again —
    capturing our (maybe older) file on top of it could undo it."""
    if lost.snapshot is None:
        return None
    if lost.version and lost.winner and lost.winner.get("source_version") == lost.version:
        return Winner(lost.winner["run_id"], lost.version)
    if not diff or not lost.snapshot.is_file():
        return None
    stores, deadline = cycle.stores, time.monotonic() + min(CLAIM_WAIT, cycle.run.config.claim_timeout + 1)
    while (top := head(stores.lake, table.name)) is not None and top["run_id"] == lost.parent and \
            time.monotonic() < deadline:
        time.sleep(0.5)
    if top is None or top["run_id"] == lost.parent:
        return None
    committed = rebase(stores.state, stores.lake, table.name, top, report, stores.engine)
    with tempfile.TemporaryDirectory(prefix="cdc-race-", dir=stores.state.root) as tmp:
        changes = stores.engine.diff(committed.snapshot, lost.snapshot, table, output=Path(tmp) / "changes.parquet",
                                     stamp={})
    return None if changes or changes.schema_changed else Winner(top["run_id"])


def publish_entry(cycle: Cycle, entry: Entry, report: TableReport) -> None:
    """Commit an entry into the lake, then locally; raises `LostRace` when another writer won (the entry is
    discarded, its snapshot kept for `winner_with_same_data`)."""
    clock, state, config = time.perf_counter(), cycle.stores.state, cycle.run.config
    try:
        top = publish(entry, state, cycle.stores.lake, checkpoint_every=config.checkpoint_every,
                      transfer=cycle.listeners.transfer)
        report.uploads += uploads(entry, state)
    except LakeError as exc:
        raise LakeError(f'Table "{entry.table}": run {entry.run_id} stays in the outbox and goes out first next '
                        f"cycle: {exc}") from None
    except LostRace as lost:
        kept = state.outbox.discard(entry)  # kept for a look (and for the comparison with the winner's data)
        raise lost.kept(state.snapshot_of(kept)) from None
    project(cycle, report, top, state.snapshot_of(entry), entry.changes)
    if top.get("checkpoint") and top["run_id"] == entry.run_id:
        tidy_lake(cycle, top)
    clock = lap(report, "publish", clock)
    state.commit(entry, keep=config.retention)
    remember_rows(state.root, entry.table, entry.meta["rows"], accepted=bool(entry.meta.get("held")))
    lap(report, "commit", clock)


def project(cycle: Cycle, report: TableReport, top: dict, snapshot: Path, changes: Path | None = None) -> None:
    """Bring the full load and the table format up to the head run `top` (whose whole table is `snapshot`). The run
    is committed whatever happens here: a projection left behind is a warning, and the next cycle catches it up."""
    stores = cycle.stores
    try:
        if (written := refresh_full_load(stores.lake, top, snapshot)) is not None:
            report.uploads.append(written)
        faults.point("after_put_full", top["table"])
        if stores.table_format is not None:
            with tempfile.TemporaryDirectory(prefix="cdc-format-", dir=stores.state.root) as scratch:
                catch_up(stores.table_format, stores.lake, top, snapshot, changes, Path(scratch))
            faults.point("after_format", top["table"])
    except LakeError as exc:
        warning = f"run {top['run_id']} is committed, but {behind(exc)} — the next cycle catches it up"
        report.warnings.append(warning)
        log.warning("%s: %s", top["table"], warning)


def tidy_lake(cycle: Cycle, top: dict) -> None:
    """At a checkpoint: remove what no run lists, and the runs `lake_retention` lets go (tidying: never fatal)."""
    try:
        tidy(cycle.stores.lake, top, cycle.run.config.lake_retention)
    except LakeError as exc:
        log.warning("%s: could not tidy the lake at checkpoint %s (%s)", top["table"], top["run_id"], exc)


def behind(exc: LakeError) -> str:
    text = redact(str(exc))
    return f"a projection is behind ({text[0].lower()}{text[1:]})" if text else "a projection is behind"


def publish_preview(cycle: Cycle, table: TableConfig, report: TableReport, committed, preview: Entry | None) -> None:
    """Publish exactly the change set a dry run (or a held capture) sealed, if the lake is still where it was."""
    name, state = table.name, cycle.stores.state
    if preview is None and committed is not None and committed.run_id == cycle.run.id:
        report.status = "unchanged"  # published already (a second --publish, a retried job): nothing to do
        cycle.listeners.progress(name, f"run {cycle.run.id} is already published — nothing to do")
        return
    if preview is None:
        raise StateError(f'Table "{name}": there is no preview of run {cycle.run.id} (a later dry run replaced it, '
                         "or it was published) — preview again")
    parent = committed.run_id if committed else None
    if preview.meta.get("parent") != parent:  # it can never be published now: do not keep it
        state.outbox.drop(preview)
        raise StateError(f'Table "{name}": the preview of run {preview.run_id} was diffed against run '
                         f'{preview.meta.get("parent")}, but the lake is at run {parent} now — preview again')
    report.rows, report.counts = preview.meta["rows"], dict(preview.meta["counts"])
    report.column_counts = dict(preview.meta.get("changed_columns", {}))
    report.warnings, report.source_version = list(preview.meta["warnings"]), preview.meta.get("source_version")
    if preview.meta["kind"] == "unchanged":
        report.status = "unchanged"
        state.record_version(name, report.source_version)
        state.outbox.drop(preview)
        return
    if preview.meta.get("held") and name not in cycle.run.accept_held:
        raise HeldError(preview.meta["held"])
    report.status = preview.meta["kind"]
    cycle.listeners.progress(name, f"publishing the previewed run {preview.run_id} to {cycle.stores.lake.url}")
    publish_entry(cycle, state.outbox.release(preview), report)
