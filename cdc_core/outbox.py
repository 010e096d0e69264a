"""The outbox: one table's captured runs on their way to the lake, each in one state, and every move between them.

An entry is one table's run: a folder with `entry.json` (its meta), `snapshot.parquet`, and `changes.parquet`
when there are changes (`details.parquet` in a dry run). Its state is the folder it is in, and only this module
names those folders (the layout of every existing data dir):

```
outbox/{table}/.staging-{run}/   STAGING    being built by a capture
outbox/{table}/{run}/            PENDING    sealed, waiting to be published
outbox/{table}/.preview-{run}/   PREVIEW    a dry run's sealed capture
                                 HELD       the same folder, whose entry.json says "held"
sent/{table}/{run}/              SENT       published and committed
discarded/{table}/{run}/         DISCARDED  lost the race to commit
```

Every move is one rename, after the entry's files are on disk, so a crash leaves an entry in one state or the
next, never half-way:

```
start → STAGING ─seal──────────▶ PENDING ─send────▶ SENT        (the newest `keep` are kept)
          │                        └─────discard─▶ DISCARDED   (the newest 3 are kept for a look)
          ├─seal_preview─▶ PREVIEW ─release─▶ PENDING
          └─hold─────────▶ HELD    ─release─▶ PENDING          (accepted by a person)
abandon, clean: STAGING → gone;  drop: any sealed entry that can never be published → gone
seal_preview, hold: the table's older PREVIEW or HELD entry → gone (the newest capture is the one to look at)
```
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from . import faults
from .durable import fsync_dir, fsync_tree
from .jsonfile import read_json, write_json_atomic

DISCARDED_KEPT = 3  # lost entries kept for a look


class EntryState(Enum):
    """Where an entry is on its way to the lake; each state is one folder (see `folder`)."""

    STAGING = "staging"
    """Being built by a capture: never read; a run that was killed leaves it, and the next one removes it."""
    PENDING = "pending"
    """Sealed and waiting to be published: the next cycle publishes it first, under the same keys."""
    PREVIEW = "preview"
    """A dry run's sealed capture (the newest only): publishing the preview publishes exactly this."""
    HELD = "held"
    """A sealed capture a guard stopped (kept as a preview): published only when a person accepts it."""
    SENT = "sent"
    """Published and committed: kept for a look, the newest `retention` of them."""
    DISCARDED = "discarded"
    """Lost the race to commit to another writer: kept for a look (and the comparison with the winner's data)."""


# state → (folder under the data dir, prefix of the run's folder name); a held entry is a preview that says so
_FOLDERS = {
    EntryState.STAGING: ("outbox", ".staging-"),
    EntryState.PENDING: ("outbox", ""),
    EntryState.PREVIEW: ("outbox", ".preview-"),
    EntryState.HELD: ("outbox", ".preview-"),
    EntryState.SENT: ("sent", ""),
    EntryState.DISCARDED: ("discarded", ""),
}


def state_of(path: Path, meta: dict | None) -> EntryState:
    """The state of the entry at `path` (with its meta), read from the folder it is in."""
    top, name = path.parent.parent.name, path.name
    if top != "outbox":
        return EntryState(top)
    if name.startswith(_FOLDERS[EntryState.STAGING][1]):
        return EntryState.STAGING
    if name.startswith(_FOLDERS[EntryState.PREVIEW][1]):
        return EntryState.HELD if (meta or {}).get("held") else EntryState.PREVIEW
    return EntryState.PENDING


@dataclass(frozen=True)
class Entry:
    """One captured table run: waiting in the outbox, sent, or discarded (its `state`)."""

    table: str
    run_id: str
    dir: Path
    meta: dict

    @property
    def changes(self) -> Path | None:
        path = self.dir / "changes.parquet"
        return path if self.meta.get("has_changes") else None

    @property
    def state(self) -> EntryState:
        return state_of(self.dir, self.meta)


class Outbox:
    """The entries of one data dir, and their transitions."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def folder(self, state: EntryState, table: str, run_id: str) -> Path:
        """Where an entry of `table`'s run `run_id` is when it is in `state`."""
        top, prefix = _FOLDERS[state]
        return self.root / top / table / f"{prefix}{run_id}"

    def _all(self, state: EntryState, table: str) -> list[Path]:
        """The folders of `table`'s entries that may be in `state`, oldest run first."""
        top, prefix = _FOLDERS[state]
        return sorted((self.root / top / table).glob(f"{prefix}*" if prefix else "[0-9]*"))

    # --- what is there -------------------------------------------------------------------------------------------
    def pending(self, table: str) -> list[Entry]:
        """Sealed entries not yet committed, oldest first."""
        return [e for path in self._all(EntryState.PENDING, table) if (e := _read(path, table, path.name))]

    def preview(self, table: str, run_id: str) -> Entry | None:
        """The sealed preview of `table` from the dry run `run_id` (held or not), if it is still there."""
        return _read(self.folder(EntryState.PREVIEW, table, run_id), table, run_id)

    def held(self, table: str) -> Entry | None:
        """The capture a guard held (kept sealed, as a preview, until a person accepts it), if there is one."""
        for path in reversed(self._all(EntryState.HELD, table)):
            entry = _read(path, table)
            if entry is not None and entry.meta.get("held"):
                return entry
        return None

    def sent(self, table: str, run_id: str) -> Entry | None:
        """A published entry, while retention keeps it."""
        return _read(self.folder(EntryState.SENT, table, run_id), table, run_id)

    def run_ids(self) -> list[str]:
        """The runs waiting in the outbox, of every table (their entry read or not; no staging, no preview)."""
        return [e.name for e in (self.root / "outbox").glob("*/*") if not e.name.startswith(".")]

    # --- transitions ---------------------------------------------------------------------------------------------
    def start(self, table: str, run_id: str) -> Path:
        """→ STAGING: a fresh folder to build an entry in (not visible as pending until `seal`)."""
        path = self.folder(EntryState.STAGING, table, run_id)
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    def seal(self, staging: Path, meta: dict) -> Entry:
        """STAGING → PENDING: write the entry's entry.json, then make it pending with one rename."""
        return self._move(staging, meta, EntryState.PENDING)

    def seal_preview(self, staging: Path, meta: dict) -> Entry:
        """STAGING → PREVIEW (HELD when `meta` says "held"): keep a dry run's entry exactly as it was shown; it
        replaces any older preview of the table."""
        for old in self._all(EntryState.PREVIEW, meta["table"]):
            shutil.rmtree(old, ignore_errors=True)
        return self._move(staging, meta, EntryState.PREVIEW)

    def hold(self, staging: Path, meta: dict) -> Entry:
        """STAGING → HELD: keep a capture a guard stopped as it was diffed; `--accept-held` publishes exactly it."""
        return self.seal_preview(staging, meta)

    def release(self, entry: Entry) -> Entry:
        """PREVIEW or HELD → PENDING: publish exactly what the preview (or the held capture) sealed."""
        return self._move(entry.dir, entry.meta, EntryState.PENDING)

    def send(self, entry: Entry, keep: int) -> Entry:
        """PENDING → SENT, once committed; only the newest `keep` sent entries of the table stay."""
        sent = self._replace(entry, EntryState.SENT)
        faults.point("commit_after_sent", entry.table)
        for old in self._all(EntryState.SENT, entry.table)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
        return sent

    def discard(self, entry: Entry) -> Entry:
        """PENDING → DISCARDED: an entry that lost the race to commit, kept for a look (the newest few)."""
        kept = self._replace(entry, EntryState.DISCARDED)
        for old in self._all(EntryState.DISCARDED, entry.table)[:-DISCARDED_KEPT]:
            shutil.rmtree(old, ignore_errors=True)
        return kept

    def drop(self, entry: Entry) -> None:
        """Any sealed entry → gone: it can never be published (diffed against a run the lake has moved past)."""
        shutil.rmtree(entry.dir, ignore_errors=True)

    def abandon(self, staging: Path) -> None:
        """STAGING → gone: a capture that found nothing to publish."""
        shutil.rmtree(staging, ignore_errors=True)

    def clean(self, table: str) -> None:
        """STAGING → gone: half-built entries a killed run left (never sealed, never published)."""
        for old in self._all(EntryState.STAGING, table):
            shutil.rmtree(old, ignore_errors=True)

    def _move(self, folder: Path, meta: dict, state: EntryState) -> Entry:
        """Seal `folder` into `state`: its entry.json and files on disk first, then one rename."""
        if not (folder / "entry.json").is_file() or read_json(folder / "entry.json") != meta:
            write_json_atomic(folder / "entry.json", meta)
        fsync_tree(folder)  # the snapshot and change files DuckDB wrote are on disk before the entry exists
        final = self.folder(state, meta["table"], meta["run_id"])
        os.replace(folder, final)
        fsync_dir(final.parent)
        return Entry(table=meta["table"], run_id=meta["run_id"], dir=final, meta=meta)

    def _replace(self, entry: Entry, state: EntryState) -> Entry:
        """Move a sealed entry into `state`, replacing what an interrupted earlier move left there."""
        target = self.folder(state, entry.table, entry.run_id)
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(entry.dir, target)
        fsync_dir(target.parent)
        fsync_dir(entry.dir.parent)
        return Entry(table=entry.table, run_id=entry.run_id, dir=target, meta=entry.meta)


def _read(path: Path, table: str, run_id: str | None = None) -> Entry | None:
    """The entry in folder `path` (its run id: `run_id`, else its entry.json's), None when it has no entry.json."""
    meta = read_json(path / "entry.json")
    return Entry(table=table, run_id=run_id or meta["run_id"], dir=path, meta=meta) if meta is not None else None
