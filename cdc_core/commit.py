"""The commit protocol: the lake decides which run follows which, so several writers never duplicate or overwrite.

Per table the lake holds a chain of runs; every manifest names its parent (the run it was diffed against). A writer
publishes a pending run R (parent P) in four steps:

1. **Claim** P: create `claims/{t}/{t}_{P}.{gen}.json` if absent (S3 `If-None-Match: *`, a local exclusive link).
   Only the claimant writes R's data keys, so two writers never write the same key with other bytes. A claim left
   by a writer that never came back is taken over after `lake_claim_timeout` with the next generation.
2. **Data**: the CDC file and (first capture) the base, each created only if absent (a retry finds its own bytes).
3. **Link**: create `commits/{t}/{t}_{P}.json` (the whole manifest) if absent. This is the commit point: exactly one
   run per parent. A writer that loses removes what it wrote and raises `LostRace` (the pipeline compares its data
   with the winner's); a writer that took a claim over removes the dead run's data once its link is in.
4. **Manifest** `manifests/{t}/{t}_{R}.json` (what readers read; any writer completes a link whose manifest a
   crash left unwritten), then the **full load**, the one object that is replaced.

With a table format (Delta, Iceberg), the claimant applies the run to it between the data and the link; the
format records the run in the same commit, so a retry never applies it twice, and the manifest records the
format table's version for the run. The format is told the lake's committed runs: a run on the table that the lake
never committed (its writer died before the link, and this writer took its claim over) is undone first.

`claims/` and `commits/` are keys readers ignore. Links stay forever (they keep a stalled writer from ever forking
the chain); a claim is removed once its run is committed.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.parquet as pq

from . import faults
from .errors import CdcError, LakeError
from .lake import (
    Lake,
    base_key,
    cdc_key,
    check_manifest,
    claim_key,
    full_load_key,
    link_key,
    manifest_key,
    read_manifests,
    sha256,
)
from .report import Upload
from .state import Entry, State, write_json_atomic

if TYPE_CHECKING:
    from .formats import TableFormat

log = logging.getLogger("cdc_core")
Transfer = Callable[[str, str, int, int], None]  # (table, key, bytes done, bytes in all)


class LostRace(CdcError):
    "Another writer committed a run on the same parent first; this run was not published."

    def __init__(self, table: str, winner: dict | None, message: str, parent: str | None = None):
        super().__init__(message)
        self.table, self.winner, self.parent = table, winner, parent  # parent: the run the lost run was diffed on
        self.snapshot: Path | None = None  # the lost run's snapshot, once discarded (set by the pipeline)


def head(lake: Lake, table: str) -> dict | None:
    """The table's latest committed run (its manifest), after completing any link a crash left without manifest."""
    runs = read_manifests(lake, table)
    current = runs[-1] if runs else None
    while (raw := lake.get(link_key(table, current["run_id"] if current else None))) is not None:
        try:
            linked = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise LakeError(f"{link_key(table, current and current['run_id'])} in {lake.url} is damaged — restore "
                            "it from a backup") from None
        key = manifest_key(table, str(linked.get("run_id")))
        linked = check_manifest(linked, key, lake.url)
        if not any(m["run_id"] == linked["run_id"] for m in runs):
            _create_bytes(lake, raw, key)  # a writer stopped between its link and its manifest: finish it
        current = linked
    return current


def _files(entry: Entry, state: State) -> list[tuple[Path, str, str]]:
    """(local file, lake key, fault point) of an entry's data, written before the link."""
    files = [(entry.changes, cdc_key(entry.table, entry.run_id), "after_put_cdc")] if entry.changes else []
    if entry.meta["kind"] == "full_load":  # the first full load stays, as the base replay starts from
        files.append((state.snapshot_of(entry), base_key(entry.table, entry.run_id), "after_put_base"))
    return files


def _upload(local: Path, key: str) -> Upload:
    return Upload(key=key, rows=pq.ParquetFile(local).metadata.num_rows, bytes=local.stat().st_size)


def plan(entry: Entry, state: State) -> list[Upload]:
    """What publishing an entry would write (data, manifest, then the full load)."""
    uploads = [_upload(local, key) for local, key, _ in _files(entry, state)]
    return uploads + [Upload(key=manifest_key(entry.table, entry.run_id), rows=None, bytes=0),
                      _upload(state.snapshot_of(entry), full_load_key(entry.table))]


def publish(entry: Entry, state: State, lake: Lake, *, claim_timeout: float, transfer: Transfer | None = None,
            table_format: TableFormat | None = None) -> list[Upload]:
    """Commit an entry into the lake with the protocol above; raises `LostRace` if another writer won its parent."""
    table, run_id, parent = entry.table, entry.run_id, entry.meta.get("parent")
    top = head(lake, table)
    if not _mine(top, entry):
        if (top["run_id"] if top else None) != parent:
            _remove_orphans(lake, table, [key for local, key, _ in _files(entry, state)
                                          if lake.checksum(key) == sha256(local)])  # what a killed try left
            raise _lost(entry, top, "committed run {winner} since this run was diffed")
        taken = _claim(lake, entry, claim_timeout)
        faults.point("after_claim", table)
        uploads = []
        for local, key, fault in _files(entry, state):
            _create(lake, local, key, _meter(transfer, table, key, local.stat().st_size))
            faults.point(fault, table)
            uploads.append(_upload(local, key))
        if table_format is not None and not (entry.dir / "manifest.json").is_file():
            try:
                _apply_format(table_format, entry, state, lake)
            except LostRace:
                _remove_orphans(lake, table, [u.key for u in uploads])
                raise
        manifest = _manifest(entry, state, uploads)
        if not lake.create(manifest, link_key(table, parent)):
            winner = json.loads(lake.read(link_key(table, parent)))
            if not _mine(winner, entry):
                _remove_orphans(lake, table, [u.key for u in uploads], winner)  # never a key the winner lists
                raise _lost(entry, winner, "committed run {winner} on the same parent first")
        if taken is not None and taken != run_id:  # the run of a claim taken over can never commit now
            _remove_orphans(lake, table, [cdc_key(table, taken), base_key(table, taken)])
        faults.point("after_link", table)
        _create(lake, manifest, manifest_key(table, run_id))
        faults.point("after_put_manifest", table)
    else:  # committed already (a crash after the link): what is left is the tidying and the full load
        uploads = [_upload(local, key) for local, key, _ in _files(entry, state)]
    _remove(lake, [k for k in lake.list(f"claims/{table}/") if _claims_parent(k, table, parent)])
    snapshot = state.snapshot_of(entry)
    lake.put(snapshot, full_load_key(table), _meter(transfer, table, full_load_key(table), snapshot.stat().st_size))
    faults.point("after_put_full", table)
    return uploads + [Upload(key=manifest_key(table, run_id), rows=None, bytes=_manifest(entry).stat().st_size),
                      _upload(snapshot, full_load_key(table))]


def _apply_format(table_format: TableFormat, entry: Entry, state: State, lake: Lake) -> None:
    """Apply the run to the format table on top of the lake's history (idempotent) and note its version for the
    manifest."""
    from .formats import CommitConflict, FormatRun

    top = head(lake, entry.table)  # links included: a run linked but without its manifest yet is committed
    committed = read_manifests(lake, entry.table)
    if (top["run_id"] if top else None) != entry.meta.get("parent"):  # its claim was taken over, and that run won
        raise _lost(entry, top, "committed run {winner} since this run was diffed")
    run = FormatRun(table=entry.table, run_id=entry.run_id, key=tuple(entry.meta["pk"]),
                    snapshot=state.snapshot_of(entry), changes=entry.changes, first=entry.meta["kind"] == "full_load",
                    history=tuple(m["run_id"] for m in committed), token=entry.meta.get("token"))
    try:
        version = table_format.apply(run)
    except CommitConflict as exc:
        raise _lost(entry, None, f"committed to the {table_format.name} table first ({exc})") from None
    entry.meta["table_format"] = {"name": table_format.name, "version": version}
    faults.point("after_format", entry.table)


def _manifest(entry: Entry, state: State | None = None, uploads: list[Upload] | None = None) -> Path:
    """The run's manifest, written once into the entry (a retry sends the very same bytes)."""
    path = entry.dir / "manifest.json"
    if path.is_file() or state is None:
        return path
    snapshot = state.snapshot_of(entry)
    files = [{"key": u.key, "bytes": u.bytes, "sha256": sha256(local), "rows": u.rows}
             for u, (local, _, _) in zip(uploads or [], _files(entry, state), strict=True)]
    files.append({"key": full_load_key(entry.table), "bytes": snapshot.stat().st_size, "sha256": sha256(snapshot),
                  "rows": entry.meta["rows"]})
    write_json_atomic(path, {**entry.meta, "files": files})
    return path


def _claim(lake: Lake, entry: Entry, timeout: float) -> str | None:
    """Hold the claim on the entry's parent (or take over one older than `timeout`: then the run id it was for);
    else `LostRace`."""
    table, parent = entry.table, entry.meta.get("parent")
    body = Path(entry.dir / "claim.json")
    write_json_atomic(body, {"run_id": entry.run_id, "token": entry.meta.get("token"),
                             "writer": f"{socket.gethostname()} pid {os.getpid()}",
                             "claimed_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")})
    for _ in range(10):  # each turn either holds the claim, loses, or sees a newer claim appear
        claims = sorted(k for k in lake.list(f"claims/{table}/") if _claims_parent(k, table, parent))
        if not claims:
            if lake.create(body, claim_key(table, parent, 0)):
                return None
            continue
        holder = json.loads(lake.get(claims[-1]) or b"{}")
        if _mine(holder, entry):
            return None
        if (linked := lake.get(link_key(table, parent))) is not None:
            raise _lost(entry, json.loads(linked), "committed run {winner} on the same parent first")
        age = _age(holder.get("claimed_at"))
        if age < timeout:
            raise _lost(entry, None, f"is committing run {holder.get('run_id')} on the same parent "
                                     f"({holder.get('writer')}, {age:.0f} s ago)")
        log.warning("%s: taking over the claim of run %s (%s), left %.0f s ago — lake_claim_timeout is %.0f s",
                    table, holder.get("run_id"), holder.get("writer"), age, timeout)
        generation = int(claims[-1].rsplit(".", 2)[-2]) + 1
        if lake.create(body, claim_key(table, parent, generation)):
            return str(holder.get("run_id") or "") or None
    raise LakeError(f'Table "{table}": the claim on run {parent} kept changing hands — other writers are busy on '
                    "this table; the next cycle tries again")


def _age(claimed_at: object) -> float:
    """Seconds since a claim was made (a claim without a readable time counts as abandoned)."""
    try:
        made = datetime.strptime(str(claimed_at), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return float("inf")
    return (datetime.now(UTC) - made).total_seconds()


def _mine(found: dict | None, entry: Entry) -> bool:
    """Whether a claim, link or manifest is this entry's own (two writers may pick the same run id)."""
    return bool(found) and found.get("run_id") == entry.run_id and found.get("token") == entry.meta.get("token")


def _claims_parent(key: str, table: str, parent: str | None) -> bool:
    return key.rsplit("/", 1)[-1].startswith(f"{table}_{parent or 'root'}.")


def _lost(entry: Entry, winner: dict | None, what: str) -> LostRace:
    run = winner["run_id"] if winner else "?"
    return LostRace(entry.table, winner, f'Table "{entry.table}": another writer {what.format(winner=run)}; run '
                                         f"{entry.run_id} was not published — the next cycle rebases on the lake",
                    entry.meta.get("parent"))


def _create(lake: Lake, local: Path, key: str, on_bytes: Callable[[int], None] | None = None) -> None:
    """Create `key`; if it exists it must hold these very bytes (a retry), never other ones."""
    if not lake.create(local, key, on_bytes) and lake.checksum(key) not in (sha256(local), ""):
        raise LakeError(f"{key} already exists in {lake.url} with other bytes — another writer wrote this run id; "
                        "nothing was overwritten: run verify and report this")


def _create_bytes(lake: Lake, data: bytes, key: str) -> None:
    with tempfile.NamedTemporaryFile(prefix="cdc-commit-", delete=False) as f:
        f.write(data)
    try:
        _create(lake, Path(f.name), key)
    finally:
        os.unlink(f.name)


def _remove(lake: Lake, keys: list[str]) -> None:
    for key in keys:
        try:
            lake.delete(key)
        except LakeError as exc:  # tidying only: a leftover claim or orphan is never read
            log.warning("could not remove %s: %s", key, exc)


def _remove_orphans(lake: Lake, table: str, keys: list[str], winner: dict | None = None) -> None:
    """Remove data keys of a run that can never commit, unless a committed manifest (or the winner's link) lists
    them: two writers may pick one run id, and a retry accepts its own bytes."""
    listed = {f["key"] for m in [*read_manifests(lake, table), winner or {}] for f in m.get("files", [])}
    _remove(lake, [key for key in keys if key not in listed])  # removing an absent key is no error


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
