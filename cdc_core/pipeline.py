"""One capture cycle over the configured tables: fetch → rebase → snapshot → diff → outbox → commit.

A table's failure never stops the others; its committed state stays where it was, so nothing is lost: the next
cycle publishes what is pending in the outbox first, then diffs against the lake's latest run again. How a run is
committed into the lake (so that several writers never duplicate or overwrite) is in `commit`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from .chain import head
from .commit import LostRace, plan
from .config import Config, TableConfig
from .cycle import Cycle, Inputs, Listeners, Progress, Run, Stores, Transfer
from .engines import make_engine
from .errors import BusyError, CdcError, ConfigError, HeldError, SourceError, StateError
from .fetching import fetch, intended
from .formats import make_format
from .lake import make_lake
from .layout import RUN_ID_FORMAT
from .logs import SUMMARISED, redact
from .outbox import Entry
from .publishing import Winner, project, publish_entry, publish_preview, winner_with_same_data
from .report import RunReport, TableReport, Upload
from .sources import Fetch, make_source
from .stage import Previous, rebase, stage
from .state import State

__all__ = ["Observer", "RunReport", "TableReport", "Upload", "run_once"]
log = logging.getLogger("cdc_core")
# told each cycle's report at its end (`quiet`: the cycle failed as a whole on its config, whose one line is the
# error): monitoring (outcome, metrics file, notifications) is one, attached by the faces (`monitored`)
Observer = Callable[[RunReport, bool], None]


def run_once(config: Config, *, tables: list[str] | None = None, skip_download: bool = False,
             dry_run: bool = False, publish_preview: str | None = None, accept_held: Collection[str] = (),
             on_progress: Progress | None = None, on_transfer: Transfer | None = None,
             observers: Sequence[Observer] = ()) -> RunReport:
    """Run one capture cycle and return its report; per-table errors are in the report, not raised. Each of
    `observers` is told the report of a cycle that was not a dry run (an observer's failure is a warning).

    With `dry_run`, fetch and diff but neither upload nor commit: each table's report lists the uploads it would
    make, and `preview` points at its sealed change set. `publish_preview=<that dry run's run id>` then publishes
    exactly those change sets (nothing is fetched or diffed again); a table whose lake moved in between is refused
    with "preview again". A capture that breaks one of its table's guards is held (status "held", nothing
    published) unless its table is in `accept_held`.
    """
    try:
        return _run_once(config, tables=tables, skip_download=skip_download, dry_run=dry_run,
                         publish_preview=publish_preview, accept_held=accept_held, on_progress=on_progress,
                         on_transfer=on_transfer, observers=observers)
    except BusyError:
        raise  # the capture that holds the lock is the cycle; it reports for itself
    except CdcError as exc:  # the cycle as a whole failed (config, data dir, engine): heard like a table failure
        if not dry_run:
            started = datetime.now(UTC).replace(microsecond=0)
            failed = [TableReport(name, status="failed", error=redact(str(exc)))
                      for name in tables or [t.name for t in config.tables]]
            _tell(observers, RunReport(run_id=started.strftime(RUN_ID_FORMAT), source=config.source.type,
                                       lake=str(config.lake.url), source_version=None, started_at=started,
                                       tables=failed, finished_at=started),
                  quiet=isinstance(exc, ConfigError))  # its one line is the error, exit 2
        raise


def _run_once(config: Config, *, tables: list[str] | None, skip_download: bool, dry_run: bool,
              publish_preview: str | None, accept_held: Collection[str], on_progress: Progress | None,
              on_transfer: Transfer | None, observers: Sequence[Observer]) -> RunReport:
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
        newest = max([r for r in [newest, *intended(lake, heads, head_errors)] if r], default=None)
        run_id = publish_preview or state.new_run_id(started, after=newest)
        report = RunReport(run_id=run_id, source=source.description, lake=lake.url, source_version=None,
                           started_at=started, tables=[TableReport(t.name) for t in selected], dry_run=dry_run)
        source_error = None
        if publish_preview:
            fetched = Fetch(version=None)
        else:
            try:
                clock = time.perf_counter()
                fetched = fetch(source, state, selected, run_id, skip_download, progress, heads)
                report.timings["fetch"] = round(time.perf_counter() - clock, 3)
            except Exception as exc:  # the whole source failed: every table fails, pending entries still go out
                if skip_download or not isinstance(exc, CdcError | OSError):
                    raise
                error = exc if isinstance(exc, CdcError) else SourceError(
                    f"Fetching from {source.description} failed ({exc}) — check the disk and try again")
                fetched, source_error = Fetch(version=None, errors={t.name: error for t in selected}), error
                log.error("%s", error, extra=SUMMARISED)  # said once here, not once per table
        report.source_version = fetched.version
        cycle = Cycle(Run(config, run_id, started, dry_run, bool(publish_preview), frozenset(accept_held)),
                      Inputs(fetched, heads, head_errors, source_error), Stores(state, lake, engine, table_format),
                      Listeners(progress, on_transfer))
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
        if not dry_run:
            _tell(observers, report)
    return report


def _tell(observers: Sequence[Observer], report: RunReport, *, quiet: bool = False) -> None:
    for observe in observers:
        try:
            observe(report, quiet)
        except Exception as exc:  # noqa: BLE001 — an observer never fails the cycle it observes
            log.warning("%s", redact(f"an observer of the cycle failed ({type(exc).__name__}: {exc}) — the capture "
                                     "itself is not affected"))


def _capture(cycle: Cycle, table: TableConfig, report: TableReport) -> None:
    """One table's part of the cycle; what each stage took goes to the debug log (and the report)."""
    try:
        _capture_table(cycle, table, report)
        if report.status != "held" and not cycle.run.dry_run and (waiting := _held(cycle.stores.state, table.name)):
            report.held_waiting = waiting.run_id  # e.g. the source broke meanwhile: say the held one still waits
    finally:
        if report.timings:
            log.debug("%s: %s", table.name, " · ".join(f"{k} {v:.2f} s" for k, v in report.timings.items()))


def _held(state: State, name: str) -> Entry | None:
    """The table's held capture; one whose entry is damaged can never be published: said, and taken for none."""
    try:
        return state.outbox.held(name)
    except StateError as exc:
        log.warning("%s", exc)
        return None


def _capture_table(cycle: Cycle, table: TableConfig, report: TableReport) -> None:
    name, state, run, inputs = table.name, cycle.stores.state, cycle.run, cycle.inputs
    say = cycle.listeners.progress
    try:
        state.outbox.clean(name)
        if name in inputs.head_errors and (run.dry_run or run.publish):  # nothing to preview against
            raise inputs.head_errors[name]
        if name in inputs.fetched.errors and not state.outbox.pending(name):
            raise inputs.fetched.errors[name]  # nothing to capture and nothing to send
        top = inputs.heads.get(name)
        ours = {top["run_id"] if top else None}  # heads the fetched file may be captured on
        for entry in state.outbox.pending(name):  # the outbox first, in order
            if run.dry_run:
                report.uploads += plan(entry, state)
                continue
            say(name, f"publishing pending run {entry.run_id} first")
            try:
                publish_entry(cycle, entry, report)
            except LostRace as lost:  # discarded; fine if the winner holds the same data, else the next cycle
                if (winner := winner_with_same_data(cycle, table, report, lost)) is None:
                    raise
                if winner.version:  # it captured this very source version: nothing more this cycle
                    _no_changes(cycle, report, winner)
                    return
                say(name, f"run {entry.run_id} was not published: {winner}")
            else:
                report.published_pending.append(entry.run_id)
                ours.add(entry.run_id)
            top = head(cycle.stores.lake, name)
        try:
            _capture_latest(cycle, table, report, top, state.outbox.pending(name) if run.dry_run else [],
                            moved=(top["run_id"] if top else None) not in ours)
        except LostRace as lost:  # another writer committed first: no failure if it committed this very data
            if run.dry_run or (winner := winner_with_same_data(cycle, table, report, lost,
                                                               diff=not run.publish)) is None:
                raise  # publishing a preview: only the same source version counts, nothing is diffed
            if winner.version is None:  # known from a diff: none of the columns changed either
                report.column_counts = {}
            _no_changes(cycle, report, winner)
    except HeldError as exc:
        report.status, report.error = "held", redact(str(exc))
        log.warning("%s", exc, extra=SUMMARISED)
    except CdcError as exc:
        report.status, report.error = "failed", redact(str(exc))
        if exc is not inputs.source_error:  # a source that failed as a whole was logged once, when it did
            log.error("%s", exc, extra=SUMMARISED)
    except OSError as exc:  # the disk, the data dir or a local lake: one line, and the other tables go on
        where = f" ({exc.filename})" if exc.filename else ""
        report.status, report.error = "failed", redact(f'Table "{name}": {exc.strerror or exc}{where} — check that '
                                                       "the data dir and the lake are writable folders with space")
        log.error("%s", report.error, extra=SUMMARISED)
    except Exception as exc:  # a bug: report it on this table (with its traceback in the log) and go on
        report.status, report.error = "failed", redact(f'Table "{name}": unexpected {type(exc).__name__}: {exc}')
        log.exception("Table %s failed", name, extra=SUMMARISED)


def _no_changes(cycle: Cycle, report: TableReport, winner: Winner) -> None:
    """The table's run lost to a writer that committed the same data: nothing is missing, nothing changed."""
    report.status, report.counts = "unchanged", {"I": 0, "U": 0, "D": 0}
    cycle.listeners.progress(report.table, f"no changes: {winner}")


def _capture_latest(cycle: Cycle, table: TableConfig, report: TableReport, top: dict | None,
                    pending: list[Entry], moved: bool) -> None:
    """Rebase on the lake's head `top`, then snapshot, diff and publish the fetched file (or the previewed run).
    `moved`: another writer committed since this cycle fetched, so the fetched file may be older than the head:
    it is only compared with it, never committed over it."""
    name, state, run, fetched = table.name, cycle.stores.state, cycle.run, cycle.inputs.fetched
    say = cycle.listeners.progress
    unread = cycle.inputs.head_errors.get(name)
    if unread is not None:  # the lake cannot be read: a change set is kept in the outbox, diffed against the local
        committed = state.committed(name)  # state (publishing it checks it is still on the lake's head); no
        log.warning("%s", unread, extra=SUMMARISED)  # change at all is still a failure: the head was not seen
        report.warnings.append(redact(str(unread)))  # the summary says it (once, see cli)
    else:
        committed = rebase(state, cycle.stores.lake, name, top, report, cycle.stores.engine)
    if not run.dry_run and top is not None and committed is not None:
        project(cycle, report, top, committed.snapshot)
    if run.publish:
        publish_preview(cycle, table, report, committed, state.outbox.preview(name, run.id))
        return
    held = state.outbox.held(name) if name in run.accept_held and not run.dry_run else None
    if held is not None and held.meta.get("parent") == (committed.run_id if committed else None):
        say(name, f"publishing the held capture of run {held.run_id}, as accepted")
        publish_preview(cycle, table, report, committed, held)  # exactly what was held and seen, no re-capture
        return
    if held is not None:  # diffed against a run the lake has moved past: it can never be published
        say(name, f"the held capture of run {held.run_id} is out of date (the lake moved on): capturing again, "
                  "guarded")
        state.outbox.drop(held)
    if name in fetched.errors:
        raise fetched.errors[name]
    if fetched.unchanged:
        if unread is not None:
            raise unread
        report.status = "skipped"
        return
    # the previous snapshot: the newest one waiting in the outbox (only in a dry run, which does not publish
    # it first), else the committed one, which is the lake's head
    previous = (Previous(pending[-1].run_id, state.snapshot_of(pending[-1]), pending[-1].meta["rows"])
                if pending else Previous(committed.run_id, committed.snapshot, committed.rows)
                if committed else None)
    stale = _held(state, name) if not run.dry_run else None  # a newer capture replaces a held one, or drops it
    entry = stage(cycle.stores.engine, state, table, fetched.files[name], previous, run_id=run.id,
                  started=run.started, version=fetched.version, report=report, dry_run=run.dry_run,
                  options=run.config.cdc)  # a fresh capture always meets the guards: only a held one is accepted
    if entry is not None and moved:  # never an older fetch over a newer run: the next cycle fetches again
        state.outbox.drop(entry)  # not kept: never compared with the winner's data
        raise LostRace(f'Table "{name}": another writer committed run {top["run_id"]} after this cycle fetched, with '
                       "other data — not captured over it; the next cycle fetches again", table=name,
                       parent=committed.run_id if committed else None, winner=top)
    if stale is not None:  # this capture met the guards: the held one, diffed against an older source, never will
        why = "the source is back to what the lake holds" if entry is None else "this capture replaces it"
        say(name, f"the held capture of run {stale.run_id} is dropped: {why}")
        state.outbox.drop(stale)
    if entry is None:
        if unread is not None:
            raise unread
        report.status = "unchanged"
        say(name, f"no changes ({report.rows} rows)")
        if not run.dry_run:
            state.record_version(name, fetched.version)
        return
    report.status = entry.meta["kind"]
    if run.dry_run:
        report.uploads += plan(entry, state)
        report.preview = entry.dir
        if entry.meta.get("held"):
            report.status, report.error = "held", entry.meta["held"]
        return
    say(name, f"publishing to {cycle.stores.lake.url}")
    publish_entry(cycle, entry, report)
