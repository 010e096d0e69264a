"""Keeping the lake's size in check at every checkpoint: data no run lists, and (with `lake_retention`) old runs.

Run by the writer that committed a checkpoint (every `checkpoint_every` runs), so its listings are paid once per
checkpoint, not per capture:

- **Leftovers**: `claims/{t}/` (a lake from before the log), and intents on a parent older than the head (their
  writers were killed after writing them, or after their own link).
- **Orphans**: a file under `cdc/` or `base/` whose run id is not a committed run's and is older than the head is
  garbage (a writer killed before its link whose parent another run took since): no run can ever list it.
- **Retention**: with `"lake_retention": "90d"`, every run older than the newest checkpoint at or before the
  horizon (now − 90 days) is removed: its manifest, CDC file and base. Replay from that checkpoint on stays exact;
  `replay --as-of` before it says how far back the lake goes. Links (`commits/`) stay: they are what keeps a
  stalled writer from ever committing on a removed run.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from .chain import is_base, manifest, run_ids
from .commit import intent_keys, intents_prefix, remove_keys
from .errors import LakeError
from .lake import Lake
from .layout import RUN_ID_FORMAT, base_key, cdc_key, manifest_key, parse_key

log = logging.getLogger("cdc_core")


def tidy(lake: Lake, top: dict, retention: float | None, now: datetime | None = None) -> list[str]:
    """Remove orphans and (with `retention` seconds) runs before the horizon's checkpoint; the keys removed."""
    table = top["table"]
    kept = run_ids(lake, table)
    removed = []
    if retention is not None:
        horizon = ((now or datetime.now(UTC)) - timedelta(seconds=retention)).strftime(RUN_ID_FORMAT)
        first = _checkpoint_before(lake, table, [r for r in kept if r <= horizon])
        if first is not None:
            old = [r for r in kept if r < first]
            for run in old:
                removed += remove_keys(lake, [manifest_key(table, run), cdc_key(table, run), base_key(table, run)])
            kept = kept[len(old):]
            if old:
                log.info("%s: removed %d run(s) before checkpoint %s (lake_retention)", table, len(old), first)
    removed += remove_keys(lake, lake.list(f"claims/{table}/"))  # a lake from before the log: claims mean nothing now
    on_head = intents_prefix(table, top["run_id"])
    removed += remove_keys(lake, [k for k in intent_keys(lake, f"commits/{table}/")
                                  if not k.startswith(on_head)])  # on an older parent: they can never commit
    known = set(kept)
    for prefix in (f"cdc/{table}/", f"base/{table}/"):
        for key in lake.list(prefix):
            run = _run_of(key)
            if run is not None and run not in known and run < top["run_id"]:
                removed += remove_keys(lake, [key])
    return removed


def _checkpoint_before(lake: Lake, table: str, candidates: list[str]) -> str | None:
    """The newest run among `candidates` (oldest first) that is a base (a checkpoint or the first capture)."""
    for run in reversed(candidates):
        if is_base(manifest(lake, table, run)):
            return run
    return None


def _run_of(key: str) -> str | None:
    try:
        return parse_key(key).run_id
    except LakeError:
        return None  # not ours: left alone
