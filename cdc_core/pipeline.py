"""One capture cycle over the configured tables: fetch → snapshot → diff → outbox → publish → commit.

A table's failure never stops the others; its committed state stays where it was, so nothing is lost: the next
cycle publishes what is pending in the outbox first, then diffs against the committed snapshot again.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from . import engine, faults
from .config import Config, TableConfig
from .diff import diff
from .errors import CdcError, InputError, SourceError, StateError
from .lake import Lake, base_key, cdc_key, full_load_key, make_lake, manifest_key, sha256
from .monitor import after_cycle
from .snapshot import load_snapshot
from .sources import Fetch, make_source
from .state import Entry, State, write_json_atomic

log = logging.getLogger("cdc_core")
Progress = Callable[[str, str], None]  # (table or "", message)
Transfer = Callable[[str, str, int, int], None]  # (table, key, bytes done, bytes in all)


@dataclass(frozen=True)
class Upload:
    """One file a capture writes (or, in a dry run, would write) into the lake."""

    key: str
    rows: int | None
    bytes: int


@dataclass
class TableReport:
    """What one cycle did to one table."""

    table: str
    status: str = "pending"  # full_load | changes | unchanged | skipped | failed | held
    counts: dict[str, int] = field(default_factory=lambda: {"I": 0, "U": 0, "D": 0})
    rows: int | None = None
    uploads: list[Upload] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    published_pending: list[str] = field(default_factory=list)
    preview: Path | None = None  # dry run: the staged snapshot and change set (until the next run)
    error: str | None = None

    @property
    def keys(self) -> list[str]:
        return [u.key for u in self.uploads]


@dataclass
class RunReport:
    """What one cycle did, per table."""

    run_id: str
    source: str
    lake: str
    source_version: str | None
    started_at: datetime
    tables: list[TableReport]
    finished_at: datetime | None = None
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return all(t.status not in ("failed", "held") for t in self.tables)

    def _repr_html_(self) -> str:
        """The run and one row per table (status, I/U/D counts, rows, warnings or error) as an HTML table."""
        import html

        def cells(values: list, tag: str = "td") -> str:
            align = ("left", "left", "right", "right", "right", "right", "left")
            return "<tr>" + "".join(f'<{tag} style="padding:2px 8px;text-align:{a}">{html.escape(str(v))}</{tag}>'
                                    for a, v in zip(align, values, strict=True)) + "</tr>"

        head = cells(["table", "status", "I", "U", "D", "rows", "warnings / error"], "th")
        body = "".join(cells([t.table, t.status, *(f"{t.counts.get(op, 0):,}" for op in "IUD"),
                              "" if t.rows is None else f"{t.rows:,}", t.error or "; ".join(t.warnings)])
                       for t in self.tables)
        title = (f"Run {self.run_id}{' (dry run: nothing uploaded or committed)' if self.dry_run else ''} · "
                 f"{self.source} · version {self.source_version or '?'} → {self.lake}")
        return f"<div><p>{html.escape(title)}</p><table>{head}{body}</table></div>"


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
    progress: Progress
    transfer: Transfer | None


def run_once(config: Config, *, tables: list[str] | None = None, skip_download: bool = False,
             dry_run: bool = False, run_id: str | None = None, on_progress: Progress | None = None,
             on_transfer: Transfer | None = None) -> RunReport:
    """Run one capture cycle and return its report; per-table errors are in the report, not raised.

    With `dry_run`, fetch and diff but neither upload nor commit: each table's report lists the uploads it would
    make, and `preview` points at the staged change set. To publish exactly what a dry run showed, run again with
    `skip_download=True` and the dry run's `run_id` (the same keys; refused if another run came in between).
    """
    progress = on_progress or (lambda table, message: log.info("%s%s", f"{table}: " if table else "", message))
    selected = [config.table(name) for name in tables] if tables else list(config.tables)
    source, lake, state = make_source(config.source), make_lake(config.lake), State(config.data_dir)
    with state.lock():
        started = datetime.now(UTC).replace(microsecond=0)
        latest = state.latest_run_id()
        if run_id is not None and latest is not None and run_id <= latest:
            raise StateError(f"Run {run_id} can no longer be used: run {latest} came after it — preview again")
        run_id = run_id or state.new_run_id(started)
        report = RunReport(run_id=run_id, source=source.description, lake=lake.url, source_version=None,
                           started_at=started, tables=[TableReport(t.name) for t in selected], dry_run=dry_run)
        try:
            fetched = _fetch(source, state, selected, run_id, skip_download, progress)
        except Exception as exc:  # the whole source failed: every table fails, pending entries still go out
            if skip_download or not isinstance(exc, CdcError | OSError):
                raise
            error = exc if isinstance(exc, CdcError) else SourceError(f"Fetching from {source.description} failed "
                                                                      f"({exc}) — check the disk and try again")
            fetched = Fetch(version=None, errors={t.name: error for t in selected})
        report.source_version = fetched.version
        cycle = _Cycle(config, state, lake, fetched, run_id, started, dry_run, progress, on_transfer)
        with ThreadPoolExecutor(max_workers=max(1, min(config.workers, len(selected))),
                                thread_name_prefix="cdc-table") as pool:
            for _ in pool.map(lambda pair: _capture(cycle, *pair), zip(selected, report.tables)):
                pass
        report.finished_at = datetime.now(UTC).replace(microsecond=0)
        after_cycle(config, report)  # outcome, metrics file, notifications (not for a dry run); never raises
    return report


def _fetch(source, state: State, tables: list[TableConfig], run_id: str, skip_download: bool,
           progress: Progress) -> Fetch:
    if skip_download:
        last = state.last_fetch()
        if last is None:
            raise StateError(f"Nothing was fetched into {state.fetch_dir} yet — run once without --skip-download")
        progress("", f"re-using the fetch of run {last['run_id']} (source version {last.get('version')})")
        fetched = Fetch(version=last.get("version"))
        for table in tables:
            path = state.fetch_dir / f"{table.name}.csv"
            if path.is_file():
                fetched.files[table.name] = path
            else:
                fetched.errors[table.name] = StateError(
                    f'Table "{table.name}" is not in the last fetch — run without --skip-download')
        return fetched
    progress("", f"fetching {', '.join(t.name for t in tables)} from {source.description}")
    incoming = state.incoming(run_id)
    versions = {_captured_version(state, t.name) for t in tables}
    fetched = source.fetch(tables, incoming, last_version=_latest(versions))
    if fetched.unchanged and versions != {fetched.version}:  # a table is behind the source: fetch all the same
        fetched = source.fetch(tables, incoming, last_version=None)
    if fetched.unchanged:
        shutil.rmtree(incoming, ignore_errors=True)
        progress("", f"the source is still at version {fetched.version}: nothing to capture")
        return fetched
    faults.point("after_fetch")
    state.replace_fetch(incoming, {"run_id": run_id, "version": fetched.version, "source": source.description,
                                   "fetched_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                                   "tables": sorted(fetched.files)})
    faults.point("after_fetch_swap")
    fetched.files = {name: state.fetch_dir / path.name for name, path in fetched.files.items()}
    return fetched


def _captured_version(state: State, table: str) -> str | None:
    """The source version a table was last captured at (pending in the outbox, or committed)."""
    pending = state.pending(table)
    if pending:
        return pending[-1].meta.get("source_version")
    committed = state.committed(table)
    return committed.source_version if committed else None


def _latest(versions: set[str | None]) -> str | None:
    """The latest committed source version (numbers compare as numbers), None before any capture."""
    known = [v for v in versions if v]
    return max(known, key=lambda v: (len(v), v)) if known else None


def _capture(cycle: _Cycle, table: TableConfig, report: TableReport) -> None:
    name, state = table.name, cycle.state
    try:
        state.clean_staging(name)
        for entry in state.pending(name):
            if cycle.dry_run:
                report.uploads += plan(entry, state)
                continue
            cycle.progress(name, f"publishing pending run {entry.run_id} first")
            report.uploads += publish(entry, state, cycle.lake, cycle.transfer)
            state.commit(entry, keep=cycle.config.retention)
            report.published_pending.append(entry.run_id)
        if name in cycle.fetched.errors:
            raise cycle.fetched.errors[name]
        if cycle.fetched.unchanged:
            report.status = "skipped"
            return
        entry = stage(cycle, table, report)
        if entry is None:
            report.status = "unchanged"
            cycle.progress(name, f"no changes ({report.rows} rows)")
            if not cycle.dry_run:
                state.record_version(name, cycle.fetched.version)
            return
        report.status = entry.meta["kind"]
        if cycle.dry_run:
            report.uploads += plan(entry, state)
            report.preview = entry.dir
            return
        cycle.progress(name, f"publishing to {cycle.lake.url}")
        report.uploads += publish(entry, state, cycle.lake, cycle.transfer)
        state.commit(entry, keep=cycle.config.retention)
    except CdcError as exc:
        report.status, report.error = "failed", str(exc)
        log.error("%s", exc)
    except Exception as exc:  # a bug or an OS failure: report it on this table and go on with the others
        report.status, report.error = "failed", f'Table "{name}": unexpected {type(exc).__name__}: {exc}'
        log.exception("Table %s failed", name)


def stage(cycle: _Cycle, table: TableConfig, report: TableReport) -> Entry | None:
    """Snapshot and diff one table into an outbox entry (sealed, unless a dry run); None when nothing changed."""
    name, config, state, run_id = table.name, cycle.config, cycle.state, cycle.run_id
    con = engine.connect(config.engine, spill_dir=config.data_dir / "tmp")
    try:
        folder = state.staging(name, run_id)
        snap = load_snapshot(cycle.fetched.files[name], table, folder / "snapshot.parquet", con=con,
                             compression=_duckdb_codec(config.compression))
        report.rows = snap.rows
        faults.point("after_snapshot", name)
        meta = {"table": name, "run_id": run_id, "source_version": cycle.fetched.version, "rows": snap.rows,
                "captured_at": cycle.started.strftime("%Y-%m-%dT%H:%M:%SZ"), "kind": "full_load",
                "has_changes": False, "counts": {"I": 0, "U": 0, "D": 0}, "warnings": [], "pk": list(table.pk),
                "columns": snap.columns}
        # the previous snapshot: the newest one waiting in the outbox (only in a dry run, which does not publish
        # it first), else the committed one
        pending, committed = state.pending(name), state.committed(name)
        previous = ((state.snapshot_of(pending[-1]), pending[-1].meta["rows"]) if pending
                    else (committed.snapshot, committed.rows) if committed else None)
        if previous is not None and snap.rows == 0 < previous[1] and not table.allow_empty:
            raise InputError(f'Table "{name}": {cycle.fetched.files[name].name} has a header but no rows, while '
                             f"the last capture had {previous[1]:,} — a cut download? If the table really was "
                             'emptied, set "allow_empty": true on the table in the config')
        if previous is not None:
            changes = diff(previous[0], snap.path, table.pk, date_field=table.date_field,
                           detect=table.detect, con=con)
            faults.point("after_diff", name)
            report.counts, report.warnings = dict(changes.counts), list(changes.warnings)
            if not changes and not changes.schema_changed:
                shutil.rmtree(folder, ignore_errors=True)
                return None
            rows = changes.rows.append_column("_cdc_run_id", pa.array([run_id] * changes.rows.num_rows, pa.string()))
            rows = rows.append_column("_cdc_captured_at", pa.array([cycle.started] * rows.num_rows,
                                                                   pa.timestamp("us", tz="UTC")))
            if rows.num_rows:
                pq.write_table(rows, folder / "changes.parquet", compression=config.compression)
            meta.update(kind="changes", has_changes=rows.num_rows > 0, counts=dict(changes.counts),
                        warnings=list(changes.warnings))
        if cycle.dry_run:
            return Entry(table=name, run_id=run_id, dir=folder, meta=meta)
        entry = state.add_entry(folder, meta)
        faults.point("after_stage", name)
        return entry
    finally:
        con.close()


def _files(entry: Entry, state: State) -> list[tuple[Path, str, str]]:
    """(local file, lake key, fault point) of everything an entry uploads before its manifest."""
    snapshot, table, run_id = state.snapshot_of(entry), entry.table, entry.run_id
    files = [(entry.changes, cdc_key(table, run_id), "after_put_cdc")] if entry.changes else []
    files.append((snapshot, full_load_key(table), "after_put_full"))
    if entry.meta["kind"] == "full_load":  # the first full load stays, as the base replay starts from
        files.append((snapshot, base_key(table, run_id), "after_put_base"))
    return files


def _upload(local: Path, key: str) -> Upload:
    return Upload(key=key, rows=pq.ParquetFile(local).metadata.num_rows, bytes=local.stat().st_size)


def plan(entry: Entry, state: State) -> list[Upload]:
    """What publishing an entry would upload (its manifest last)."""
    uploads = [_upload(local, key) for local, key, _ in _files(entry, state)]
    return uploads + [Upload(key=manifest_key(entry.table, entry.run_id), rows=None, bytes=0)]


def publish(entry: Entry, state: State, lake: Lake, transfer: Transfer | None = None) -> list[Upload]:
    """Upload an entry's change set and full load, then its manifest (the commit marker)."""
    table, run_id = entry.table, entry.run_id
    manifest, uploads = {**entry.meta, "files": []}, []
    for local, key, fault in _files(entry, state):
        lake.put(local, key, _meter(transfer, table, key, local.stat().st_size))
        faults.point(fault, table)
        uploads.append(_upload(local, key))
        manifest["files"].append({"key": key, "bytes": uploads[-1].bytes, "sha256": sha256(local),
                                  "rows": uploads[-1].rows})
    write_json_atomic(entry.dir / "manifest.json", manifest)
    key = manifest_key(table, run_id)
    lake.put(entry.dir / "manifest.json", key)
    faults.point("after_put_manifest", table)
    return uploads + [Upload(key=key, rows=None, bytes=(entry.dir / "manifest.json").stat().st_size)]


def _meter(transfer: Transfer | None, table: str, key: str, total: int) -> Callable[[int], None] | None:
    """A byte counter for one upload that reports (table, key, done, total)."""
    if transfer is None:
        return None
    done = 0

    def count(chunk: int) -> None:
        nonlocal done
        done += chunk
        transfer(table, key, done, total)

    return count


def _duckdb_codec(compression: str) -> str:
    return "uncompressed" if compression == "none" else compression
