"""What is derived from the log — the full load, Delta and Iceberg tables — brought up to the head, idempotently.

Whoever runs next does it: the writer that committed a run, and every later cycle (a crash, a stalled writer, a
writer without `"table_format"` or a format switched on later can leave a projection behind, never wrong):

- **The full load** is the one object that is replaced. It is written only with the head's snapshot, by a
  compare-and-swap (S3 `If-Match` on the ETag read before checking the head; locally a lock beside the file), so a
  writer that stalled after reading the head can never put an older table over a newer one: its swap fails, it
  reads the head again and finds it is not the head any more.
- **A table format** records the run id of every commit. A table one run behind gets that run (a MERGE / a
  copy-on-write); a table further behind, or holding a run the log does not have (a writer of an older version of
  cdc_core died before the lake's commit), is rewritten from the head's full table in one commit. A format is
  never merged onto another run than the one the change set was diffed against.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from .chain import head, manifest
from .errors import LakeError
from .lake import Lake
from .layout import cdc_key, full_load_file, manifest_key
from .report import Upload

if TYPE_CHECKING:
    from .formats import TableFormat

log = logging.getLogger("cdc_core")



def refresh_full_load(lake: Lake, top: dict, snapshot: Path) -> Upload | None:
    """Make the lake's full load the head run `top`'s table (`snapshot`); the upload, or None when it already was,
    or when the head moved on (that run's writer, or the next cycle, writes it)."""
    table, wanted = top["table"], full_load_file(top)
    key = wanted["key"]
    for _ in range(10):
        version = lake.version(key)  # read before the head: a swap based on it fails if anyone wrote since
        if version is not None and lake.checksum(key) == wanted["sha256"]:
            return None
        now = head(lake, table)
        if now is None or now["run_id"] != top["run_id"]:
            return None  # a newer run is committed: its full load is not ours to write
        if lake.swap(snapshot, key, version, wanted["sha256"]):
            return Upload(key=key, rows=wanted["rows"], bytes=snapshot.stat().st_size)
    raise LakeError(f'The full load of "{table}" kept changing while run {top["run_id"]} was writing it — other '
                    "writers are busy on this table; the next cycle writes it")


def catch_up(table_format: TableFormat, lake: Lake, top: dict, snapshot: Path, changes: Path | None,
             scratch: Path) -> int | None:
    """Bring the format table to the head run `top` (its full table `snapshot`, its change rows `changes` when the
    caller has them, else read from the lake); the table's version after it, None when it is ahead of `top`."""
    from .formats import FormatRun

    table, key = top["table"], tuple(top["pk"])
    last = table_format.last_run(table)
    if last is not None and last[0] > top["run_id"] and _committed(lake, table, *last):
        return None  # another writer is further on; it brings the table up
    whole = FormatRun(table=table, run_id=top["run_id"], key=key, snapshot=snapshot, changes=None, first=True,
                      token=top.get("token"))
    if last is not None and whole.is_run(*last):
        return table_format.applied_version(table, top["run_id"])
    parent = top.get("parent")
    if last is not None and parent is not None and last[0] == parent and _same_token(lake, table, parent, last[1]):
        if changes is None and top.get("has_changes"):
            changes = lake.local(cdc_key(table, top["run_id"]), scratch)
        return table_format.apply(FormatRun(table=table, run_id=top["run_id"], key=key, snapshot=snapshot,
                                            changes=changes, first=False, history=(parent,),
                                            token=top.get("token")))
    if last is not None:
        log.warning("%s: the %s table is at run %s, not at run %s before the head — rewriting it from run %s's "
                    "full table", table, table_format.name, last[0], parent, top["run_id"])
    return table_format.apply(whole)


def _committed(lake: Lake, table: str, run_id: str, token: str | None) -> bool:
    """Whether a run the format recorded is in the log (a newer writer's), not a run the lake never committed."""
    return lake.get(manifest_key(table, run_id)) is not None and _same_token(lake, table, run_id, token)


def _same_token(lake: Lake, table: str, run_id: str, token: str | None) -> bool:
    """Whether the run the format recorded is the log's run of that id (a run recorded without token matches)."""
    return not token or manifest(lake, table, run_id).get("token") in (None, token)
