"""One capture cycle over the configured tables: fetch → snapshot → diff → outbox → publish → commit.

A table's failure never stops the others; its committed state stays where it was, so nothing is lost: the next
cycle publishes what is pending in the outbox first, then diffs against the committed snapshot again.
"""

from __future__ import annotations

import logging
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
from .errors import CdcError, SourceError, StateError
from .lake import Lake, base_key, cdc_key, full_load_key, make_lake, manifest_key, sha256
from .snapshot import load_snapshot
from .sources import Fetch, make_source
from .state import Entry, State, write_json_atomic

log = logging.getLogger("cdc_core")
Progress = Callable[[str, str], None]  # (table or "", message)


@dataclass
class TableReport:
    """What one cycle did to one table."""

    table: str
    status: str = "pending"  # full_load | changes | unchanged | skipped | failed
    counts: dict[str, int] = field(default_factory=lambda: {"I": 0, "U": 0, "D": 0})
    rows: int | None = None
    keys: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    published_pending: list[str] = field(default_factory=list)
    error: str | None = None


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

    @property
    def ok(self) -> bool:
        return all(t.status != "failed" for t in self.tables)


def run_once(config: Config, *, tables: list[str] | None = None, skip_download: bool = False,
             on_progress: Progress | None = None) -> RunReport:
    """Run one capture cycle and return its report; per-table errors are in the report, not raised."""
    progress = on_progress or (lambda table, message: log.info("%s%s", f"{table}: " if table else "", message))
    selected = [config.table(name) for name in tables] if tables else list(config.tables)
    source, lake, state = make_source(config.source), make_lake(config.lake), State(config.data_dir)
    with state.lock():
        started = datetime.now(UTC).replace(microsecond=0)
        run_id = state.new_run_id(started)
        report = RunReport(run_id=run_id, source=source.description, lake=lake.url, source_version=None,
                           started_at=started, tables=[TableReport(t.name) for t in selected])
        try:
            fetched = _fetch(source, state, selected, run_id, skip_download, progress)
        except Exception as exc:  # the whole source failed: every table fails, pending entries still go out
            if skip_download or not isinstance(exc, CdcError | OSError):
                raise
            error = exc if isinstance(exc, CdcError) else SourceError(f"Fetching from {source.description} failed "
                                                                      f"({exc}) — check the disk and try again")
            fetched = Fetch(version=None, errors={t.name: error for t in selected})
        report.source_version = fetched.version
        with ThreadPoolExecutor(max_workers=max(1, min(config.workers, len(selected))),
                                thread_name_prefix="cdc-table") as pool:
            for _ in pool.map(lambda pair: _capture(config, *pair, fetched, state, lake, run_id, started, progress),
                              zip(selected, report.tables)):
                pass
        report.finished_at = datetime.now(UTC).replace(microsecond=0)
    return report


def _fetch(source, state: State, tables: list[TableConfig], run_id: str, skip_download: bool,
           progress: Progress) -> Fetch:
    last = state.last_fetch()
    if skip_download:
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
    last_version = (last or {}).get("version") or _last_committed_version(state)
    fetched = source.fetch(tables, incoming, last_version=last_version)
    faults.point("after_fetch")
    state.replace_fetch(incoming, {"run_id": run_id, "version": fetched.version, "source": source.description,
                                   "fetched_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                                   "tables": sorted(fetched.files)})
    faults.point("after_fetch_swap")
    fetched.files = {name: state.fetch_dir / path.name for name, path in fetched.files.items()}
    return fetched


def _last_committed_version(state: State) -> str | None:
    versions = [c.source_version for c in state.all_committed() if c.source_version]
    return max(versions, key=lambda v: (len(v), v)) if versions else None


def _capture(config: Config, table: TableConfig, report: TableReport, fetched: Fetch, state: State, lake: Lake,
             run_id: str, started: datetime, progress: Progress) -> None:
    name = table.name
    try:
        state.clean_staging(name)
        for entry in state.pending(name):
            progress(name, f"publishing pending run {entry.run_id} first")
            report.keys += publish(entry, state, lake)
            state.commit(entry, keep=config.retention)
            report.published_pending.append(entry.run_id)
        if name in fetched.errors:
            raise fetched.errors[name]
        if fetched.unchanged:
            report.status = "skipped"
            return
        entry = stage(config, table, fetched, state, run_id, started, report)
        if entry is None:
            report.status = "unchanged"
            progress(name, f"no changes ({report.rows} rows)")
            return
        progress(name, f"publishing to {lake.url}")
        report.keys += publish(entry, state, lake)
        state.commit(entry, keep=config.retention)
        report.status = entry.meta["kind"]
    except CdcError as exc:
        report.status, report.error = "failed", str(exc)
        log.error("%s", exc)
    except Exception as exc:  # a bug or an OS failure: report it on this table and go on with the others
        report.status, report.error = "failed", f'Table "{name}": unexpected {type(exc).__name__}: {exc}'
        log.exception("Table %s failed", name)


def stage(config: Config, table: TableConfig, fetched: Fetch, state: State, run_id: str, started: datetime,
          report: TableReport) -> Entry | None:
    """Snapshot and diff one table into a sealed outbox entry; None when nothing changed."""
    name = table.name
    con = engine.connect(config.engine, spill_dir=config.data_dir / "tmp")
    try:
        folder = state.staging(name, run_id)
        snap = load_snapshot(fetched.files[name], table, folder / "snapshot.parquet", con=con,
                             compression=_duckdb_codec(config.compression))
        report.rows = snap.rows
        faults.point("after_snapshot", name)
        meta = {"table": name, "run_id": run_id, "source_version": fetched.version, "rows": snap.rows,
                "captured_at": started.strftime("%Y-%m-%dT%H:%M:%SZ"), "kind": "full_load", "has_changes": False,
                "counts": {"I": 0, "U": 0, "D": 0}, "warnings": [], "pk": list(table.pk), "columns": snap.columns}
        committed = state.committed(name)
        if committed is not None:
            changes = diff(committed.snapshot, snap.path, table.pk, date_field=table.date_field,
                           detect=table.detect, con=con)
            faults.point("after_diff", name)
            report.counts, report.warnings = dict(changes.counts), list(changes.warnings)
            if not changes and not changes.schema_changed:
                _remove(folder)
                return None
            rows = changes.rows.append_column("_cdc_run_id", pa.array([run_id] * changes.rows.num_rows, pa.string()))
            rows = rows.append_column("_cdc_captured_at", pa.array([started] * rows.num_rows,
                                                                   pa.timestamp("us", tz="UTC")))
            if rows.num_rows:
                pq.write_table(rows, folder / "changes.parquet", compression=config.compression)
            meta.update(kind="changes", has_changes=rows.num_rows > 0, counts=dict(changes.counts),
                        warnings=list(changes.warnings))
        entry = state.add_entry(folder, meta)
        faults.point("after_stage", name)
        return entry
    finally:
        con.close()


def publish(entry: Entry, state: State, lake: Lake) -> list[str]:
    """Upload an entry's change set and full load, then its manifest (the commit marker); returns the keys."""
    snapshot, table, run_id = state.snapshot_of(entry), entry.table, entry.run_id
    files = [(entry.changes, cdc_key(table, run_id), "after_put_cdc")] if entry.changes else []
    files.append((snapshot, full_load_key(table), "after_put_full"))
    if entry.meta["kind"] == "full_load":  # the first full load stays, as the base replay starts from
        files.append((snapshot, base_key(table, run_id), "after_put_base"))
    manifest = {**entry.meta, "files": []}
    for local, key, fault in files:
        lake.put(local, key)
        faults.point(fault, table)
        manifest["files"].append({"key": key, "bytes": local.stat().st_size, "sha256": sha256(local),
                                  "rows": pq.ParquetFile(local).metadata.num_rows})
    write_json_atomic(entry.dir / "manifest.json", manifest)
    key = manifest_key(table, run_id)
    lake.put(entry.dir / "manifest.json", key)
    faults.point("after_put_manifest", table)
    return [k for _, k, _ in files] + [key]


def _duckdb_codec(compression: str) -> str:
    return "uncompressed" if compression == "none" else compression


def _remove(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
