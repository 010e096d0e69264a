"""The commit log of a table: one chain of runs, found in a constant number of reads whatever its length.

Per table the lake holds:

- `commits/{t}/{t}_{P}.json`, the **link** after run P (`root` for the first run): created once, if absent (S3
  `If-None-Match: *`, a local exclusive link), it holds the manifest of the one run committed on P. Creating it is
  the commit: two writers diffed against P race for one key and exactly one wins, so the runs form a single chain.
  Links are never removed (a stalled writer can never fork the chain later, whatever the retention).
- `manifests/{t}/{t}_{R}.json`, the manifest of run R (what readers read), written right after its link; any
  writer completes a link whose writer stopped before its manifest. Each names its `parent`; run ids sort after
  their parent's along the chain, so "latest" is the head of the chain and also the largest run id.
- `commits/{t}/_head.json`, the **head pointer**: the id of the newest run its writer knew of, replaced after every
  commit. It is a hint, never the truth: a reader starts there and follows the links after it to the end (the
  pointer, that run's manifest and its missing link: three reads), so finding the head costs the same at run 10
  and 10,000. A stale pointer (a writer that stalled before replacing it) costs one read per run it is behind; a
  missing or damaged one falls back to one listing of the manifests (a lake written before the pointer existed),
  and the next commit writes it.
- A **checkpoint** every `checkpoint_every` runs: the run's manifest also lists `base/{t}/{t}_{R}.parquet`, its
  whole table, so a replay reads at most that many CDC files after the newest base (`since_base` counts them).
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

from .errors import LakeError
from .lake import Lake, parse_manifest
from .layout import RUN_ID, check_manifest, link_key, manifest_key, parse_key

log = logging.getLogger("cdc_core")
RUN = re.compile(RUN_ID)
HINT_READS = 1000  # links followed from a stale head pointer before giving up on it (a listing is cheaper then)


def head_pointer_key(table: str) -> str:
    return f"commits/{table}/_head.json"


def head(lake: Lake, table: str, *, repair: bool = True) -> dict | None:
    """The manifest of the table's head run (None before its first run).

    With `repair`, a linked run whose manifest is missing (its writer stopped in between) gets it now; a read-only
    caller (`--dry-run`, preview, verify, replay, the notebooks) passes `repair=False` and writes nothing."""
    start = pointed = _pointer(lake, table)
    if start is None:  # no pointer yet (a lake from before it, or damaged): the newest manifest, once
        kept = run_ids(lake, table)
        start = manifest(lake, table, kept[-1]) if kept else None
    current, followed = start, 0
    while (raw := lake.get(link_key(table, current["run_id"] if current else None))) is not None:
        linked = _linked(lake, table, current, raw)
        if repair and lake.checksum(manifest_key(table, linked["run_id"])) is None:
            create_bytes(lake, raw, manifest_key(table, linked["run_id"]))
        current, followed = linked, followed + 1
        if followed > HINT_READS:
            raise LakeError(f'The head pointer of table "{table}" in {lake.url} is more than {HINT_READS} runs '
                            f"behind — delete {head_pointer_key(table)}; the next capture finds the head again")
    if repair and current is not None and (followed or pointed is None):
        write_pointer(lake, table, current)
    return current


def write_pointer(lake: Lake, table: str, manifest: dict) -> None:
    """Point readers at `manifest`'s run (a hint: a failure to write it costs later readers a few reads, no more)."""
    try:
        put_bytes(lake, json.dumps({"run_id": manifest["run_id"]}).encode(), head_pointer_key(table))
    except LakeError as exc:
        log.warning("%s: could not move the head pointer to run %s (%s)", table, manifest["run_id"], exc)


def _pointer(lake: Lake, table: str) -> dict | None:
    raw = lake.get(head_pointer_key(table))
    if raw is None:
        return None
    try:
        run_id = json.loads(raw.decode("utf-8"))["run_id"]
        if not isinstance(run_id, str) or not RUN.fullmatch(run_id):
            raise ValueError(run_id)
    except (UnicodeDecodeError, ValueError, TypeError, KeyError):
        log.warning("%s: the head pointer %s is damaged — finding the head from the manifests", table,
                    head_pointer_key(table))
        return None
    found = lake.get(manifest_key(table, run_id))  # the manifest itself, as every reader reads it
    return None if found is None else parse_manifest(lake, manifest_key(table, run_id), found)


def _linked(lake: Lake, table: str, current: dict | None, raw: bytes) -> dict:
    try:
        linked = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise LakeError(f"{link_key(table, current and current['run_id'])} in {lake.url} is damaged — restore "
                        "it from a backup") from None
    return check_manifest(linked, manifest_key(table, str(linked.get("run_id"))), lake.url)


def manifest(lake: Lake, table: str, run_id: str) -> dict:
    """The checked manifest of one run."""
    key = manifest_key(table, run_id)
    return parse_manifest(lake, key, lake.read(key))


def walk_back(lake: Lake, table: str, top: dict, stop: Callable[[dict], bool]) -> list[dict]:
    """The runs from `top` back along the parents to the first one for which `stop` holds (included), oldest
    first; a chain that ends first gives every run to its first."""
    runs, listed = [top], None
    while not stop(runs[-1]):
        if "parent" in runs[-1]:
            parent = runs[-1]["parent"]
        else:  # a manifest from before runs named their parent: the run before it
            listed = listed if listed is not None else run_ids(lake, table)
            parent = max((r for r in listed if r < runs[-1]["run_id"]), default=None)
        if parent is None:
            break
        runs.append(manifest(lake, table, parent))
    return runs[::-1]


def recent_runs(lake: Lake, table: str, top: dict, count: int) -> list[dict]:
    """The last `count` runs up to `top`, oldest first (`count` reads at most)."""
    seen = [0]

    def enough(run: dict) -> bool:
        seen[0] += 1
        return seen[0] >= count

    return walk_back(lake, table, top, enough)


def run_ids(lake: Lake, table: str) -> list[str]:
    """The ids of the runs whose manifests the lake keeps, oldest first (one listing: no manifest is read)."""
    found = []
    for key in lake.list(f"manifests/{table}/"):
        name = key.rsplit("/", 1)[-1]
        if name.startswith(f"{table}_") and name.endswith(".json"):
            found.append(name[len(table) + 1:-len(".json")])
    return sorted(r for r in found if RUN.fullmatch(r))


def is_base(run: dict) -> bool:
    """Whether a run's manifest lists a whole table to replay from (the first capture or a checkpoint)."""
    return any(parse_key(f["key"]).kind == "base" for f in run["files"])


def put_bytes(lake: Lake, data: bytes, key: str) -> None:
    _with_file(data, lambda path: lake.put(path, key))


def create_bytes(lake: Lake, data: bytes, key: str) -> bool:
    """Create `key` with `data` if absent; True if created."""
    return _with_file(data, lambda path: lake.create(path, key))


def _with_file(data: bytes, use: Callable[[Path], object]):
    with tempfile.NamedTemporaryFile(prefix="cdc-log-", delete=False) as f:
        f.write(data)
    try:
        return use(Path(f.name))
    finally:
        os.unlink(f.name)
