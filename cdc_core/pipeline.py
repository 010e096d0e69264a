"""One capture cycle over the configured tables: fetch → rebase → snapshot → diff → outbox → commit.

A table's failure never stops the others; its committed state stays where it was, so nothing is lost: the next
cycle publishes what is pending in the outbox first, then diffs against the lake's latest run again. How a run is
committed into the lake (so that several writers never duplicate or overwrite) is in `commit`.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from . import faults
from .chain import head
from .commit import LostRace, intended_runs, plan, publish, uploads
from .config import Config, TableConfig
from .engines import Engine, make_engine
from .errors import BusyError, CdcError, HeldError, LakeError, SourceError, StateError
from .formats import TableFormat, make_format
from .lake import Lake, make_lake
from .logs import SUMMARISED, redact
from .monitor import after_cycle
from .projections import catch_up, refresh_full_load
from .recent import remember_rows
from .report import RunReport, TableReport, Upload
from .retention import tidy
from .sources import Fetch, make_source, table_file
from .stage import Previous, _lap, rebase, stage
from .state import Entry, State

__all__ = ["RunReport", "TableReport", "Upload", "run_once"]
log = logging.getLogger("cdc_core")
CLAIM_WAIT = 60.0  # seconds a writer that lost waits for the winner's run to be committed
Progress = Callable[[str, str], None]  # (table or "", message)
Transfer = Callable[[str, str, int, int], None]  # (table, key, bytes done, bytes in all)


@dataclass
class _Cycle:
    """What every table of one cycle shares."""

    config: Config
    state: State
    lake: Lake
    fetched: Fetch
    run_id: str
    started: datetime
    dry_run: bool
    publish: bool
    progress: Progress
    transfer: Transfer | None
    heads: dict[str, dict | None] = field(default_factory=dict)
    head_errors: dict[str, CdcError] = field(default_factory=dict)
    table_format: TableFormat | None = None
    engine: Engine | None = None
    accept_held: frozenset[str] = frozenset()
    source_error: Exception | None = None  # the one error of a source that failed as a whole


def run_once(config: Config, *, tables: list[str] | None = None, skip_download: bool = False,
             dry_run: bool = False, publish_preview: str | None = None, accept_held: Collection[str] = (),
             on_progress: Progress | None = None, on_transfer: Transfer | None = None) -> RunReport:
    """Run one capture cycle and return its report; per-table errors are in the report, not raised.

    With `dry_run`, fetch and diff but neither upload nor commit: each table's report lists the uploads it would
    make, and `preview` points at its sealed change set. `publish_preview=<that dry run's run id>` then publishes
    exactly those change sets (nothing is fetched or diffed again); a table whose lake moved in between is refused
    with "preview again". A capture that breaks one of its table's guards is held (status "held", nothing
    published) unless its table is in `accept_held`.
    """
    try:
        return _run_once(config, tables=tables, skip_download=skip_download, dry_run=dry_run,
                         publish_preview=publish_preview, accept_held=accept_held, on_progress=on_progress,
                         on_transfer=on_transfer)
    except BusyError:
        raise  # the capture that holds the lock is the cycle; it reports for itself
    except CdcError as exc:  # the cycle as a whole failed (config, data dir, engine): heard like a table failure
        if not dry_run:
            started = datetime.now(UTC).replace(microsecond=0)
            failed = [TableReport(name, status="failed", error=redact(str(exc)))
                      for name in tables or [t.name for t in config.tables]]
            after_cycle(config, RunReport(run_id=started.strftime("%Y%m%d_%H%M%S"), source=config.source.type,
                                          lake=str(config.lake.url), source_version=None, started_at=started,
                                          tables=failed, finished_at=started))
        raise


def _run_once(config: Config, *, tables: list[str] | None, skip_download: bool, dry_run: bool,
              publish_preview: str | None, accept_held: Collection[str], on_progress: Progress | None,
              on_transfer: Transfer | None) -> RunReport:
    progress = on_progress or (lambda table, message: log.info("%s%s", f"{table}: " if table else "", message))
    selected = [config.table(name) for name in tables] if tables else list(config.tables)
    source, lake, state = make_source(config.source), make_lake(config.lake), State(config.data_dir)
    table_format = make_format(config.table_format, config.lake)  # a missing library stops here, with its extra
    engine = make_engine(config)
    with state.lock():
        started, began = datetime.now(UTC).replace(microsecond=0), time.perf_counter()
        heads, head_errors = {}, {}
        for table in selected:
            try:
                heads[table.name] = head(lake, table.name, repair=not dry_run)
            except CdcError as exc:
                head_errors[table.name] = exc
        newest = max((h["run_id"] for h in heads.values() if h), default=None)
        newest = max([r for r in [newest, *_intended(lake, heads, head_errors)] if r], default=None)
        run_id = publish_preview or state.new_run_id(started, after=newest)
        report = RunReport(run_id=run_id, source=source.description, lake=lake.url, source_version=None,
                           started_at=started, tables=[TableReport(t.name) for t in selected], dry_run=dry_run)
        source_error = None
        if publish_preview:
            fetched = Fetch(version=None)
        else:
            try:
                clock = time.perf_counter()
                fetched = _fetch(source, state, selected, run_id, skip_download, progress, heads)
                report.timings["fetch"] = round(time.perf_counter() - clock, 3)
            except Exception as exc:  # the whole source failed: every table fails, pending entries still go out
                if skip_download or not isinstance(exc, CdcError | OSError):
                    raise
                error = exc if isinstance(exc, CdcError) else SourceError(
                    f"Fetching from {source.description} failed ({exc}) — check the disk and try again")
                fetched, source_error = Fetch(version=None, errors={t.name: error for t in selected}), error
                log.error("%s", error, extra=SUMMARISED)  # said once here, not once per table
        report.source_version = fetched.version
        cycle = _Cycle(config, state, lake, fetched, run_id, started, dry_run, bool(publish_preview), progress,
                       on_transfer, heads, head_errors, table_format, engine, frozenset(accept_held), source_error)
        try:
            with ThreadPoolExecutor(max_workers=max(1, min(config.workers, len(selected))),
                                    thread_name_prefix="cdc-table") as pool:
                for _ in pool.map(lambda pair: _capture(cycle, *pair), zip(selected, report.tables)):
                    pass
        finally:
            engine.close()
        if publish_preview:
            report.source_version = next((t.source_version for t in report.tables if t.source_version), None)
        report.finished_at = datetime.now(UTC).replace(microsecond=0)
        report.timings["cycle"] = round(time.perf_counter() - began, 3)
        after_cycle(config, report)  # outcome, metrics file, notifications (not for a dry run); never raises
    return report


def _intended(lake: Lake, heads: dict[str, dict | None], errors: dict[str, CdcError]) -> list[str]:
    """The run ids other writers are committing (or died committing) on these heads: this cycle's goes after."""
    found = []
    for name, top in heads.items():
        try:
            found += intended_runs(lake, name, top["run_id"] if top else None)
        except CdcError as exc:
            errors[name] = exc
    return found


def _fetch(source, state: State, tables: list[TableConfig], run_id: str, skip_download: bool,
           progress: Progress, heads: dict[str, dict | None]) -> Fetch:
    if skip_download:
        last = state.last_fetch()
        if last is None:
            raise StateError(f"Nothing was fetched into {state.fetch_dir} yet — run once without --skip-download")
        progress("", f"re-using the fetch of run {last['run_id']} (source version {last.get('version')})")
        fetched = Fetch(version=last.get("version"))
        for table in tables:
            path = table_file(state.fetch_dir, table.name)
            if path is not None:
                fetched.files[table.name] = path
            else:
                fetched.errors[table.name] = StateError(
                    f'Table "{table.name}" is not in the last fetch — run without --skip-download')
        return fetched
    progress("", f"fetching {', '.join(t.name for t in tables)} from {source.description}")
    incoming = state.incoming(run_id)
    versions = {_captured_version(state, t.name, heads.get(t.name)) for t in tables}
    fetched = source.fetch(tables, incoming, last_version=_latest(versions))
    if fetched.unchanged and versions != {fetched.version}:  # a table is behind the source: fetch all the same
        fetched = source.fetch(tables, incoming, last_version=None)
    if fetched.unchanged:
        shutil.rmtree(incoming, ignore_errors=True)
        progress("", f"the source is still at version {fetched.version}: nothing to capture")
        return fetched
    if not fetched.files:  # every table failed: the last good fetch stays for --skip-download
        shutil.rmtree(incoming, ignore_errors=True)
        return fetched
    faults.point("after_fetch")
    state.replace_fetch(incoming, {"run_id": run_id, "version": fetched.version, "source": source.description,
                                   "fetched_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                                   "tables": sorted(fetched.files)})
    faults.point("after_fetch_swap")
    fetched.files = {name: state.fetch_dir / path.name for name, path in fetched.files.items()}
    return fetched


def _captured_version(state: State, table: str, top: dict | None) -> str | None:
    """The source version a table was last captured at: pending in the outbox, else committed in the lake (the
    local state knows more when it is on the lake's head: an unchanged capture records its version there)."""
    pending = state.pending(table)
    if pending:
        return pending[-1].meta.get("source_version")
    try:
        committed = state.committed(table)
    except StateError:
        committed = None
    if committed is not None and (top is None or committed.run_id == top["run_id"]):
        return committed.source_version
    return top.get("source_version") if top else None


def _latest(versions: set[str | None]) -> str | None:
    """The latest committed source version (numbers compare as numbers), None before any capture."""
    known = [v for v in versions if v]
    return max(known, key=lambda v: (len(v), v)) if known else None


def _capture(cycle: _Cycle, table: TableConfig, report: TableReport) -> None:
    """One table's part of the cycle; what each stage took goes to the debug log (and the report)."""
    try:
        _capture_table(cycle, table, report)
        if report.status != "held" and not cycle.dry_run and (waiting := _held(cycle.state, table.name)):
            report.held_waiting = waiting.run_id  # e.g. the source broke meanwhile: say the held one still waits
    finally:
        if report.timings:
            log.debug("%s: %s", table.name, " · ".join(f"{k} {v:.2f} s" for k, v in report.timings.items()))


def _held(state: State, name: str) -> Entry | None:
    """The table's held capture; one whose entry is damaged can never be published: said, and taken for none."""
    try:
        return state.held(name)
    except StateError as exc:
        log.warning("%s", exc)
        return None


def _capture_table(cycle: _Cycle, table: TableConfig, report: TableReport) -> None:
    name, state = table.name, cycle.state
    try:
        state.clean_staging(name)
        if name in cycle.head_errors and (cycle.dry_run or cycle.publish):  # nothing to preview against
            raise cycle.head_errors[name]
        if name in cycle.fetched.errors and not state.pending(name):
            raise cycle.fetched.errors[name]  # nothing to capture and nothing to send
        top = cycle.heads.get(name)
        ours = {top["run_id"] if top else None}  # heads the fetched file may be captured on
        for entry in state.pending(name):  # the outbox first, in order
            if cycle.dry_run:
                report.uploads += plan(entry, state)
                continue
            cycle.progress(name, f"publishing pending run {entry.run_id} first")
            try:
                if not _publish(cycle, entry, report):
                    return
                report.published_pending.append(entry.run_id)
                ours.add(entry.run_id)
            except LostRace as lost:  # discarded; fine if the winner holds the same data, else the next cycle
                if (winner := _winner_with_same_data(cycle, table, report, lost)) is None:
                    raise
                cycle.progress(name, f"run {entry.run_id} was not published: another writer committed the same "
                                     f"data first (run {winner})")
            top = head(cycle.lake, name)
        try:
            _capture_latest(cycle, table, report, top, state.pending(name) if cycle.dry_run else [],
                            moved=(top["run_id"] if top else None) not in ours)
        except LostRace as lost:  # another writer committed first: no failure if it committed this very data
            if cycle.dry_run or cycle.publish or (winner := _winner_with_same_data(cycle, table, report, lost)) is None:
                raise
            report.status, report.counts, report.column_counts = "unchanged", {"I": 0, "U": 0, "D": 0}, {}
            cycle.progress(name, f"no changes: another writer committed the same data first (run {winner})")
    except HeldError as exc:
        report.status, report.error = "held", redact(str(exc))
        log.warning("%s", exc, extra=SUMMARISED)
    except CdcError as exc:
        report.status, report.error = "failed", redact(str(exc))
        if exc is not cycle.source_error:  # a source that failed as a whole was logged once, when it did
            log.error("%s", exc, extra=SUMMARISED)
    except OSError as exc:  # the disk, the data dir or a local lake: one line, and the other tables go on
        where = f" ({exc.filename})" if exc.filename else ""
        report.status, report.error = "failed", redact(f'Table "{name}": {exc.strerror or exc}{where} — check that '
                                                       "the data dir and the lake are writable folders with space")
        log.error("%s", report.error, extra=SUMMARISED)
    except Exception as exc:  # a bug: report it on this table (with its traceback in the log) and go on
        report.status, report.error = "failed", redact(f'Table "{name}": unexpected {type(exc).__name__}: {exc}')
        log.exception("Table %s failed", name, extra=SUMMARISED)


def _winner_with_same_data(cycle: _Cycle, table: TableConfig, report: TableReport, lost: LostRace) -> str | None:
    """The run another writer committed on this run's parent, if it holds exactly the data of this writer's lost
    run (then nothing is missing, and the local state moves to the winner's run). A writer that wrote the same run
    id first is given a little time to commit. Its data may also be newer or older than ours: then None, the table fails, and
    the next cycle rebases and fetches again — capturing our (maybe older) file on top of it could undo it."""
    if lost.snapshot is None or not lost.snapshot.is_file():
        return None
    deadline = time.monotonic() + min(CLAIM_WAIT, cycle.config.claim_timeout + 1)
    while (top := head(cycle.lake, table.name)) is not None and top["run_id"] == lost.parent and \
            time.monotonic() < deadline:
        time.sleep(0.5)
    if top is None or top["run_id"] == lost.parent:
        return None
    committed = rebase(cycle.state, cycle.lake, table.name, top, report, cycle.engine)
    with tempfile.TemporaryDirectory(prefix="cdc-race-", dir=cycle.state.root) as tmp:
        changes = cycle.engine.diff(committed.snapshot, lost.snapshot, table, output=Path(tmp) / "changes.parquet",
                                    stamp={})
    return None if changes or changes.schema_changed else top["run_id"]


def _capture_latest(cycle: _Cycle, table: TableConfig, report: TableReport, top: dict | None,
                    pending: list[Entry], moved: bool) -> None:
    """Rebase on the lake's head `top`, then snapshot, diff and publish the fetched file (or the previewed run).
    `moved`: another writer committed since this cycle fetched, so the fetched file may be older than the head:
    it is only compared with it, never committed over it."""
    name, state = table.name, cycle.state
    unread = cycle.head_errors.get(name)
    if unread is not None:  # the lake cannot be read: a change set is kept in the outbox, diffed against the local
        committed = state.committed(name)  # state (publishing it checks it is still on the lake's head); no
        log.warning("%s", unread, extra=SUMMARISED)  # change at all is still a failure: the head was not seen
        report.warnings.append(redact(str(unread)))  # the summary says it (once, see cli)
    else:
        committed = rebase(state, cycle.lake, name, top, report, cycle.engine)
    if not cycle.dry_run and top is not None and committed is not None:
        _project(cycle, report, top, committed.snapshot)
    if cycle.publish:
        _publish_preview(cycle, table, report, committed, state.preview(name, cycle.run_id))
        return
    held = state.held(name) if name in cycle.accept_held and not cycle.dry_run else None
    if held is not None and held.meta.get("parent") == (committed.run_id if committed else None):
        cycle.progress(name, f"publishing the held capture of run {held.run_id}, as accepted")
        _publish_preview(cycle, table, report, committed, held)  # exactly what was held and seen, no re-capture
        return
    if held is not None:  # diffed against a run the lake has moved past: it can never be published
        cycle.progress(name, f"the held capture of run {held.run_id} is out of date (the lake moved on): "
                             "capturing again, guarded")
        shutil.rmtree(held.dir, ignore_errors=True)
    if name in cycle.fetched.errors:
        raise cycle.fetched.errors[name]
    if cycle.fetched.unchanged:
        if unread is not None:
            raise unread
        report.status = "skipped"
        return
    # the previous snapshot: the newest one waiting in the outbox (only in a dry run, which does not publish
    # it first), else the committed one, which is the lake's head
    previous = (Previous(pending[-1].run_id, state.snapshot_of(pending[-1]), pending[-1].meta["rows"])
                if pending else Previous(committed.run_id, committed.snapshot, committed.rows)
                if committed else None)
    stale = _held(state, name) if not cycle.dry_run else None  # a newer capture replaces a held one, or drops it
    entry = stage(cycle.engine, state, table, cycle.fetched.files[name], previous, run_id=cycle.run_id,
                  started=cycle.started, version=cycle.fetched.version, report=report, dry_run=cycle.dry_run,
                  options=cycle.config.cdc)  # a fresh capture always meets the guards: only a held one is accepted
    if entry is not None and moved:  # never an older fetch over a newer run: the next cycle fetches again
        shutil.rmtree(entry.dir, ignore_errors=True)
        raise LostRace(name, top, f'Table "{name}": another writer committed run {top["run_id"]} after this cycle '
                                  "fetched, with other data — not captured over it; the next cycle fetches again",
                       committed.run_id if committed else None)
    if stale is not None:  # this capture met the guards: the held one, diffed against an older source, never will
        why = "the source is back to what the lake holds" if entry is None else "this capture replaces it"
        cycle.progress(name, f"the held capture of run {stale.run_id} is dropped: {why}")
        shutil.rmtree(stale.dir, ignore_errors=True)
    if entry is None:
        if unread is not None:
            raise unread
        report.status = "unchanged"
        cycle.progress(name, f"no changes ({report.rows} rows)")
        if not cycle.dry_run:
            state.record_version(name, cycle.fetched.version)
        return
    report.status = entry.meta["kind"]
    if cycle.dry_run:
        report.uploads += plan(entry, state)
        report.preview = entry.dir
        if entry.meta.get("held"):
            report.status, report.error = "held", entry.meta["held"]
        return
    cycle.progress(name, f"publishing to {cycle.lake.url}")
    _publish(cycle, entry, report)


def _publish(cycle: _Cycle, entry: Entry, report: TableReport) -> bool:
    """Commit an entry into the lake, then locally; False when another writer won (the entry is discarded)."""
    clock = time.perf_counter()
    try:
        top = publish(entry, cycle.state, cycle.lake, checkpoint_every=cycle.config.checkpoint_every,
                      transfer=cycle.transfer)
        report.uploads += uploads(entry, cycle.state)
    except LakeError as exc:
        raise LakeError(f'Table "{entry.table}": run {entry.run_id} stays in the outbox and goes out first next '
                        f"cycle: {exc}") from None
    except LostRace as lost:
        kept = cycle.state.discard(entry)  # kept for a look (and for the comparison with the winner's data)
        lost.snapshot = cycle.state.snapshot_of(replace(entry, dir=kept))
        version = entry.meta.get("source_version")
        if not (version and lost.winner and lost.winner.get("source_version") == version):
            raise
        report.status = "unchanged"  # the other writer captured this very version: nothing is missing
        report.counts = {"I": 0, "U": 0, "D": 0}
        cycle.progress(entry.table, f"no changes: another writer captured source version {version} first "
                                    f"(run {lost.winner['run_id']})")
        return False
    _project(cycle, report, top, cycle.state.snapshot_of(entry), entry.changes)
    if top.get("checkpoint") and top["run_id"] == entry.run_id:
        _tidy(cycle, top)
    clock = _lap(report, "publish", clock)
    cycle.state.commit(entry, keep=cycle.config.retention)
    remember_rows(cycle.state.root, entry.table, entry.meta["rows"], accepted=bool(entry.meta.get("held")))
    _lap(report, "commit", clock)
    return True


def _project(cycle: _Cycle, report: TableReport, top: dict, snapshot: Path, changes: Path | None = None) -> None:
    """Bring the full load and the table format up to the head run `top` (whose whole table is `snapshot`). The run
    is committed whatever happens here: a projection left behind is a warning, and the next cycle catches it up."""
    try:
        if (written := refresh_full_load(cycle.lake, top, snapshot)) is not None:
            report.uploads.append(written)
        faults.point("after_put_full", top["table"])
        if cycle.table_format is not None:
            with tempfile.TemporaryDirectory(prefix="cdc-format-", dir=cycle.state.root) as scratch:
                catch_up(cycle.table_format, cycle.lake, top, snapshot, changes, Path(scratch))
            faults.point("after_format", top["table"])
    except LakeError as exc:
        warning = f"run {top['run_id']} is committed, but {_behind(exc)} — the next cycle catches it up"
        report.warnings.append(warning)
        log.warning("%s: %s", top["table"], warning)


def _tidy(cycle: _Cycle, top: dict) -> None:
    """At a checkpoint: remove what no run lists, and the runs `lake_retention` lets go (tidying: never fatal)."""
    try:
        tidy(cycle.lake, top, cycle.config.lake_retention)
    except LakeError as exc:
        log.warning("%s: could not tidy the lake at checkpoint %s (%s)", top["table"], top["run_id"], exc)


def _behind(exc: LakeError) -> str:
    text = redact(str(exc))
    return f"a projection is behind ({text[0].lower()}{text[1:]})" if text else "a projection is behind"


def _publish_preview(cycle: _Cycle, table: TableConfig, report: TableReport, committed, preview: Entry | None) -> None:
    """Publish exactly the change set a dry run (or a held capture) sealed, if the lake is still where it was."""
    name, state = table.name, cycle.state
    if preview is None and committed is not None and committed.run_id == cycle.run_id:
        report.status = "unchanged"  # published already (a second --publish, a retried job): nothing to do
        cycle.progress(name, f"run {cycle.run_id} is already published — nothing to do")
        return
    if preview is None:
        raise StateError(f'Table "{name}": there is no preview of run {cycle.run_id} (a later dry run replaced it, '
                         "or it was published) — preview again")
    parent = committed.run_id if committed else None
    if preview.meta.get("parent") != parent:  # it can never be published now: do not keep it
        shutil.rmtree(preview.dir, ignore_errors=True)
        raise StateError(f'Table "{name}": the preview of run {preview.run_id} was diffed against run '
                         f'{preview.meta.get("parent")}, but the lake is at run {parent} now — preview again')
    report.rows, report.counts = preview.meta["rows"], dict(preview.meta["counts"])
    report.column_counts = dict(preview.meta.get("changed_columns", {}))
    report.warnings, report.source_version = list(preview.meta["warnings"]), preview.meta.get("source_version")
    if preview.meta["kind"] == "unchanged":
        report.status = "unchanged"
        state.record_version(name, report.source_version)
        shutil.rmtree(preview.dir, ignore_errors=True)
        return
    if preview.meta.get("held") and name not in cycle.accept_held:
        raise HeldError(preview.meta["held"])
    report.status = preview.meta["kind"]
    cycle.progress(name, f"publishing the previewed run {preview.run_id} to {cycle.lake.url}")
    _publish(cycle, state.add_entry(preview.dir, preview.meta), report)
