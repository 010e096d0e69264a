"""Committing a run: its data, then one create-if-absent link on its parent, so the runs form a single chain.

A writer publishes a pending run R, diffed against P (the head when it was captured), in three steps (the log's
layout is in `chain`):

1. **Data**: the CDC file (and, on the first run or a checkpoint, the base), each created only if absent. A key
   that exists with other bytes belongs to another writer that picked the same run id: this run lost.
2. **Link** `commits/{t}/{t}_{P}.json` (the whole manifest), created if absent: the commit point, exactly one run
   per parent. A run is only ever linked to the run it was diffed against, and its id sorts after its parent's.
   A writer that loses removes the data it wrote and raises `LostRace` (the pipeline compares its data with the
   winner's). A writer that stopped anywhere before this step can never commit later: the winner's link is there.
3. **Manifest** `manifests/{t}/{t}_{R}.json` and the head pointer (any writer completes a link whose manifest a
   crash left unwritten).

Nothing is claimed, so nothing is taken over and no clock is compared. What is derived from the log (the full
load, Delta and Iceberg tables) is brought up to the head afterwards by `projections`. Data that a writer killed
before its link left behind is never read (readers go by the manifests) and is removed at the next checkpoint.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq

from . import faults
from .chain import create_bytes, head, write_pointer
from .errors import CdcError, LakeError
from .jsonfile import write_json_atomic
from .lake import Lake
from .layout import base_key, cdc_key, full_load_key, link_key, manifest_key, sha256
from .outbox import Entry
from .report import Upload
from .state import State

log = logging.getLogger("cdc_core")
INTENT = ".intent"  # the suffix of an intent: `commits/{t}/{t}_{P}.{run id}.{token}.intent`
Transfer = Callable[[str, str, int, int], None]  # (table, key, bytes done, bytes in all)


class LostRace(CdcError):
    "Another writer committed a run on the same parent first; this run was not published."

    def __init__(self, message: str, *, table: str, parent: str | None, winner: dict | None,
                 version: str | None = None, snapshot: Path | None = None):
        super().__init__(message)
        self.table = table
        self.parent = parent  # the run the lost run was diffed on
        self.winner = winner  # what the other writer committed on it, when that is known
        self.version = version  # the source version the lost run captured
        self.snapshot = snapshot  # the lost run's snapshot, kept to compare with the winner's (None: not kept)

    def kept(self, snapshot: Path) -> LostRace:
        """This lost race, its run discarded and its snapshot kept at `snapshot` (built anew: never changed)."""
        return LostRace(str(self), table=self.table, parent=self.parent, winner=self.winner, version=self.version,
                        snapshot=snapshot)


def checkpoint_due(top: dict | None, every: int) -> bool:
    """Whether the run after `top` writes a new base (a lake from before checkpoints counts as due)."""
    return top is not None and int(top.get("since_base", every)) + 1 >= every


def _checkpoint(entry: Entry) -> bool:
    return bool(entry.meta.get("checkpoint")) or entry.meta["kind"] == "full_load"


def _files(entry: Entry, state: State) -> list[tuple[Path, str, str]]:
    """(local file, lake key, fault point) of an entry's data, written before the link."""
    files = [(entry.changes, cdc_key(entry.table, entry.run_id), "after_put_cdc")] if entry.changes else []
    if _checkpoint(entry):  # the first full load and every checkpoint: a whole table replay starts from
        files.append((state.snapshot_of(entry), base_key(entry.table, entry.run_id), "after_put_base"))
    return files


def _upload(local: Path, key: str) -> Upload:
    return Upload(key=key, rows=pq.ParquetFile(local).metadata.num_rows, bytes=local.stat().st_size)


def plan(entry: Entry, state: State) -> list[Upload]:
    """What publishing an entry would write (data, manifest, then the full load)."""
    uploads = [_upload(local, key) for local, key, _ in _files(entry, state)]
    return uploads + [Upload(key=manifest_key(entry.table, entry.run_id), rows=None, bytes=0),
                      _upload(state.snapshot_of(entry), full_load_key(entry.table))]


def publish(entry: Entry, state: State, lake: Lake, *, checkpoint_every: int,
            transfer: Transfer | None = None) -> dict:
    """Commit an entry into the lake with the protocol above and return its manifest (committed already: the same);
    raises `LostRace` if another writer won its parent or its run id."""
    table, run_id, parent = entry.table, entry.run_id, entry.meta.get("parent")
    if parent is not None and run_id <= parent:
        raise _lost(entry, None, f"moved the table on: run {run_id} does not sort after its parent {parent}")
    top = head(lake, table)
    if _mine(top, entry):
        return top  # committed already (a crash after the link): the caller brings the projections up
    if (top["run_id"] if top else None) != parent:
        linked = lake.get(link_key(table, parent))
        done = json.loads(linked) if linked is not None else None
        if _mine(done, entry):  # committed, and another writer has built on it since
            return done
        raise _lost(entry, done or top, "committed run {winner} since this run was diffed")
    if not (entry.dir / "manifest.json").is_file():
        entry.meta["checkpoint"] = entry.meta["kind"] != "full_load" and checkpoint_due(top, checkpoint_every)
        entry.meta["since_base"] = 0 if _checkpoint(entry) else int(top.get("since_base", 0)) + 1
        write_json_atomic(entry.dir / "entry.json", entry.meta)
    manifest = _manifest(entry, state)  # written once into the entry: every checksum computed once
    committed = json.loads(manifest.read_bytes())
    create_bytes(lake, _intent(entry, committed), _intent_key(entry))  # what to remove if it never links its run
    sums = {f["key"]: f["sha256"] for f in committed["files"]}
    written = []
    for local, key, fault in _files(entry, state):
        created = lake.create(local, key, _meter(transfer, table, key, local.stat().st_size), digest=sums[key])
        if not created and lake.checksum(key) not in (sums[key], ""):  # not our bytes from a killed try
            _remove_own(lake, entry, written, None)
            raise _lost(entry, None, f"wrote run {run_id}'s {key.split('/')[0]} file first")
        written.append(key)
        faults.point(fault, table)
    if not lake.create(manifest, link_key(table, parent)):
        winner = json.loads(lake.read(link_key(table, parent)))
        if not _mine(winner, entry):
            _remove_own(lake, entry, written, winner)
            raise _lost(entry, winner, "committed run {winner} on the same parent first")
    faults.point("after_link", table)
    _remove_intents(lake, entry, committed)
    lake.create(manifest, manifest_key(table, run_id))
    faults.point("after_put_manifest", table)
    write_pointer(lake, table, committed)
    return committed


def uploads(entry: Entry, state: State) -> list[Upload]:
    """What a committed entry wrote: its data and manifest (the full load is reported by `projections`)."""
    return [*(_upload(local, key) for local, key, _ in _files(entry, state)),
            Upload(key=manifest_key(entry.table, entry.run_id), rows=None, bytes=_manifest(entry).stat().st_size)]


def _manifest(entry: Entry, state: State | None = None) -> Path:
    """The run's manifest, written once into the entry (a retry sends the very same bytes)."""
    path = entry.dir / "manifest.json"
    if path.is_file() or state is None:
        return path
    snapshot, sums = state.snapshot_of(entry), {}
    files = [{"key": key, "bytes": local.stat().st_size, "sha256": sums.setdefault(local, sha256(local)),
              "rows": pq.ParquetFile(local).metadata.num_rows} for local, key, _ in _files(entry, state)]
    digest = sums[snapshot] if snapshot in sums else sha256(snapshot)  # a base is the snapshot: hashed once
    files.append({"key": full_load_key(entry.table), "bytes": snapshot.stat().st_size, "sha256": digest,
                  "rows": entry.meta["rows"]})
    write_json_atomic(path, {**entry.meta, "files": files})
    return path


def _mine(found: dict | None, entry: Entry) -> bool:
    """Whether a link or manifest is this entry's own (two writers may pick the same run id)."""
    return bool(found) and found.get("run_id") == entry.run_id and found.get("token") == entry.meta.get("token")


def _lost(entry: Entry, winner: dict | None, what: str) -> LostRace:
    run = winner["run_id"] if winner else "?"
    return LostRace(f'Table "{entry.table}": another writer {what.format(winner=run)}; run {entry.run_id} was not '
                    "published — the next cycle rebases on the lake", table=entry.table,
                    parent=entry.meta.get("parent"), winner=winner, version=entry.meta.get("source_version"))


def _intent_key(entry: Entry) -> str:
    return f"{intents_prefix(entry.table, entry.meta.get('parent'))}{entry.run_id}.{entry.meta.get('token')}{INTENT}"


def intents_prefix(table: str, parent: str | None) -> str:
    """Where the intents of the runs on `parent` are: `…/{t}_{P}.{run id}.{token}.intent`, one per writer."""
    return f"commits/{table}/{table}_{parent or 'root'}."


def intent_keys(lake: Lake, prefix: str) -> list[str]:
    """The intents whose keys start with `prefix` (the log's links and pointer share their folder)."""
    return [key for key in lake.list(prefix) if key.endswith(INTENT)]


def intended_runs(lake: Lake, table: str, parent: str | None) -> list[str]:
    """The run ids other writers are (or were, if killed) committing on `parent`: a new run id goes after them."""
    return [key.rsplit("/", 1)[-1].split(".")[1] for key in intent_keys(lake, intents_prefix(table, parent))]


def _intent(entry: Entry, manifest: dict) -> bytes:
    """The data keys (and checksums) this run is about to write: its manifest's, but the full load's."""
    files = [f for f in manifest["files"] if f["key"] != full_load_key(entry.table)]
    return json.dumps({"run_id": entry.run_id, "token": entry.meta.get("token"),
                       "files": [{"key": f["key"], "sha256": f["sha256"]} for f in files]}).encode()


def _remove_intents(lake: Lake, entry: Entry, committed: dict) -> None:
    """Once this run is linked, no other run on its parent can ever commit: remove the data their writers left (a
    writer killed before its link), then their intents and this run's own."""
    listed = {f["key"] for f in committed["files"]}
    for key in intent_keys(lake, intents_prefix(entry.table, entry.meta.get("parent"))):
        if key != _intent_key(entry):
            try:
                other = json.loads(lake.read(key))
                for item in other.get("files", []):
                    if item["key"] not in listed and lake.checksum(item["key"]) == item["sha256"]:
                        remove_keys(lake, [item["key"]])
            except (ValueError, KeyError, TypeError, LakeError) as exc:
                log.warning("could not read %s: %s", key, exc)
        remove_keys(lake, [key])


def remove_keys(lake: Lake, keys: list[str]) -> list[str]:
    """Delete keys no run lists (tidying: a failure is a warning, the next checkpoint tries again); those removed."""
    done = []
    for key in keys:
        try:
            lake.delete(key)
            done.append(key)
        except LakeError as exc:  # data no manifest lists is never read
            log.warning("could not remove %s: %s", key, exc)
    return done


def _remove_own(lake: Lake, entry: Entry, keys: list[str], winner: dict | None) -> None:
    """Remove the data keys this run wrote, now that it can never commit — unless a committed run lists them
    (another writer that picked the same run id and wrote the very same bytes)."""
    listed = {f["key"] for f in (winner or {}).get("files", [])}
    raw = lake.get(manifest_key(entry.table, entry.run_id)) if keys else None
    if raw is not None:
        listed |= {f["key"] for f in json.loads(raw).get("files", [])}
    for key in [*(k for k in keys if k not in listed), _intent_key(entry)]:
        remove_keys(lake, [key])


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
