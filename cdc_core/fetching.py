"""The fetch of a cycle: what the source holds now, or the last fetch again (`--skip-download`), and which run
ids other writers are committing on the heads this cycle starts from."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime

from . import faults
from .commit import intended_runs
from .config import TableConfig
from .cycle import Progress
from .errors import CdcError, StateError
from .lake import Lake
from .sources import Fetch, table_file
from .state import State


def intended(lake: Lake, heads: dict[str, dict | None], errors: dict[str, CdcError]) -> list[str]:
    """The run ids other writers are committing (or died committing) on these heads: this cycle's goes after."""
    found = []
    for name, top in heads.items():
        try:
            found += intended_runs(lake, name, top["run_id"] if top else None)
        except CdcError as exc:
            errors[name] = exc
    return found


def fetch(source, state: State, tables: list[TableConfig], run_id: str, skip_download: bool,
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
    versions = {captured_version(state, t.name, heads.get(t.name)) for t in tables}
    fetched = source.fetch(tables, incoming, last_version=latest(versions))
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


def captured_version(state: State, table: str, top: dict | None) -> str | None:
    """The source version a table was last captured at: pending in the outbox, else committed in the lake (the
    local state knows more when it is on the lake's head: an unchanged capture records its version there)."""
    pending = state.outbox.pending(table)
    if pending:
        return pending[-1].meta.get("source_version")
    try:
        committed = state.committed(table)
    except StateError:
        committed = None
    if committed is not None and (top is None or committed.run_id == top["run_id"]):
        return committed.source_version
    return top.get("source_version") if top else None


def latest(versions: set[str | None]) -> str | None:
    """The latest committed source version (numbers compare as numbers), None before any capture."""
    known = [v for v in versions if v]
    return max(known, key=lambda v: (len(v), v)) if known else None
