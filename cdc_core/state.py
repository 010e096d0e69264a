"""Local state in `data_dir`: committed snapshots, the outbox, the last fetch, and the run lock.

```
data_dir/
  cdc.lock                           one run at a time (an OS lock: a killed process never leaves it held)
  fetch/current/                     the last fetched CSV files + fetch.json (what --skip-download re-reads)
  state/{table}.json                 the committed capture: run id, source version, snapshot file, rows
  snapshots/{table}/{table}_{run}.parquet   committed snapshots ("previous" of the next diff)
  outbox/, sent/, discarded/         captured runs on their way to the lake, one state each (see `outbox`)
```
Every state file is replaced atomically (temporary file, fsync, rename), and a table's state only moves forward
after its entry is published: a crash leaves either the old state (the cycle is redone) or a pending entry that
the next cycle publishes first, under the same keys.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from . import faults
from .durable import fsync_dir, fsync_file
from .errors import BusyError, StateError
from .jsonfile import read_json, write_json_atomic
from .layout import RUN_ID_FORMAT
from .outbox import Entry, Outbox

__all__ = ["Committed", "State"]



@dataclass(frozen=True)
class Committed:
    """The last committed capture of a table."""

    table: str
    run_id: str
    source_version: str | None
    snapshot: Path
    rows: int
    committed_at: str


class State:
    """The local state of one data dir."""

    def __init__(self, data_dir: Path):
        self.root = Path(data_dir)
        self.outbox = Outbox(self.root)  # the captured runs on their way to the lake

    # --- lock -------------------------------------------------------------------------------------------
    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the data dir's lock; another process holding it raises `BusyError` at once."""
        path = self.root / "cdc.lock"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            f = open(path, "a+")  # noqa: SIM115 - closed by the with below
        except OSError as exc:
            raise StateError(f"Cannot use the data dir {self.root} ({exc.strerror or exc}) — make it writable for "
                             'this user, or point "data_dir" in the config at a writable folder') from None
        with f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "another process"
                raise BusyError(f"Another capture is running on {self.root} ({holder}) — wait for it to "
                                 "finish; only one run per data dir is allowed") from None
            f.truncate(0)
            f.write(f"pid {os.getpid()} since {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC\n")
            f.flush()
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    # --- run ids ----------------------------------------------------------------------------------------
    def latest_run_id(self) -> str | None:
        """The newest run id committed or waiting in the outbox (a damaged table's state is left to that table)."""
        used = []
        for path in (self.root / "state").glob("*.json"):
            try:
                used.append(str(json.loads(path.read_text(encoding="utf-8"))["run_id"]))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        used += self.outbox.run_ids()
        return max(used, default=None)

    def new_run_id(self, now: datetime | None = None, after: str | None = None) -> str:
        """`YYYYMMDD_HHMMSS` of `now` (UTC), moved one second past any run id this data dir already used and past
        `after` (the lake's newest run of the tables at hand)."""
        now = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
        used = [run for run in [self.latest_run_id(), after] if run]
        used += [f.name for f in (self.root / "fetch").glob("[0-9]*")]
        if used:
            last = datetime.strptime(max(used), RUN_ID_FORMAT).replace(tzinfo=UTC)
            now = max(now, last + timedelta(seconds=1))
        return now.strftime(RUN_ID_FORMAT)

    # --- committed ------------------------------------------------------------------------------------------
    def committed(self, table: str) -> Committed | None:
        data = read_json(self.root / "state" / f"{table}.json")
        if data is None:
            return None
        snapshot = self.root / data["snapshot"]
        if not snapshot.is_file():
            raise StateError(f'Table "{table}": the committed snapshot {snapshot} is missing — restore it, or '
                             f"delete {self.root / 'state' / (table + '.json')} to capture the table afresh")
        return Committed(table=table, run_id=data["run_id"], source_version=data.get("source_version"),
                         snapshot=snapshot, rows=data["rows"], committed_at=data["committed_at"])

    def adopt(self, table: str, run_id: str, source_version: str | None, snapshot: Path, rows: int) -> Committed:
        """Make a run of the lake the committed state (a rebase): its snapshot is copied in, then the state file."""
        target = self._snapshot_path(table, run_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.adopt")
        shutil.copyfile(snapshot, tmp)
        fsync_file(tmp)
        os.replace(tmp, target)
        fsync_dir(target.parent)
        write_json_atomic(self.root / "state" / f"{table}.json", {
            "table": table, "run_id": run_id, "source_version": source_version,
            "snapshot": target.relative_to(self.root).as_posix(), "rows": rows,
            "committed_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "rebased": True})
        return self.committed(table)

    def forget(self, table: str) -> None:
        """Drop a table's committed state (the lake no longer has any run of it)."""
        (self.root / "state" / f"{table}.json").unlink(missing_ok=True)
        fsync_dir(self.root / "state")

    def record_version(self, table: str, source_version: str | None) -> None:
        """Note that the committed snapshot is also the table at `source_version` (a capture found no change)."""
        path = self.root / "state" / f"{table}.json"
        data = read_json(path)
        if data is not None and source_version and data.get("source_version") != source_version:
            write_json_atomic(path, {**data, "source_version": source_version})

    def all_committed(self) -> list[Committed]:
        return [c for p in sorted((self.root / "state").glob("*.json")) if (c := self.committed(p.stem))]

    # --- snapshots of entries ------------------------------------------------------------------------------
    def snapshot_of(self, entry: Entry) -> Path:
        """Where an entry's snapshot is: in the entry, or already moved to snapshots/ by an unfinished commit."""
        inside = entry.dir / "snapshot.parquet"
        return inside if inside.is_file() else self._snapshot_path(entry.table, entry.run_id)

    def _snapshot_path(self, table: str, run_id: str) -> Path:
        return self.root / "snapshots" / table / f"{table}_{run_id}.parquet"

    def commit(self, entry: Entry, keep: int) -> Committed:
        """Make a published entry the committed state; keep the newest `keep` snapshots and sent entries."""
        target = self._snapshot_path(entry.table, entry.run_id)
        committed = self.committed(entry.table)
        if committed is None or committed.run_id < entry.run_id:
            target.parent.mkdir(parents=True, exist_ok=True)
            if (entry.dir / "snapshot.parquet").is_file():
                os.replace(entry.dir / "snapshot.parquet", target)
                fsync_dir(target.parent)
                faults.point("commit_after_snapshot_move", entry.table)
            write_json_atomic(self.root / "state" / f"{entry.table}.json", {
                "table": entry.table, "run_id": entry.run_id, "source_version": entry.meta.get("source_version"),
                "snapshot": target.relative_to(self.root).as_posix(), "rows": entry.meta["rows"],
                "committed_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")})
            faults.point("commit_after_state", entry.table)
        self.outbox.send(entry, keep)
        self._prune(entry.table, keep)
        return self.committed(entry.table)

    def _prune(self, table: str, keep: int) -> None:
        """Retention: only committed snapshots are ever removed, and the committed one always stays."""
        committed = self.committed(table)
        snapshots = sorted((self.root / "snapshots" / table).glob("*.parquet"))
        for old in snapshots[:-keep] if keep else snapshots:
            if committed is None or old != committed.snapshot:
                old.unlink(missing_ok=True)

    # --- last fetch ------------------------------------------------------------------------------------------
    @property
    def fetch_dir(self) -> Path:
        """The last complete fetch: a link `fetch/current` → `fetch/{run_id}`, swapped atomically."""
        return self.root / "fetch" / "current"

    def last_fetch(self) -> dict | None:
        return read_json(self.fetch_dir / "fetch.json")

    def incoming(self, run_id: str) -> Path:
        """A fresh folder for a new fetch; leftovers of fetches that never completed are removed."""
        folder = self.root / "fetch"
        folder.mkdir(parents=True, exist_ok=True)
        current = self.fetch_dir.resolve() if self.fetch_dir.exists() else None
        for old in folder.iterdir():
            if old.name != "current" and old.resolve() != current:
                shutil.rmtree(old, ignore_errors=True)
        path = folder / run_id
        path.mkdir()
        return path

    def replace_fetch(self, incoming: Path, meta: dict) -> None:
        """Make a complete fetch the current one with one atomic link swap; then drop the previous fetch."""
        write_json_atomic(incoming / "fetch.json", meta)
        previous = self.fetch_dir.resolve() if self.fetch_dir.exists() else None
        link = incoming.parent / f".current-{incoming.name}"
        link.unlink(missing_ok=True)
        link.symlink_to(incoming.name)
        os.replace(link, self.fetch_dir)
        fsync_dir(incoming.parent)
        if previous is not None and previous != incoming.resolve():
            shutil.rmtree(previous, ignore_errors=True)
