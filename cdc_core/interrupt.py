"""What the CLI says when Ctrl-C stops a capture: which tables this command committed, which runs wait in the
outbox, and which tables have no new run — read from the data dir, after the tables in progress finish."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Sequence

from .config import Config
from .errors import CdcError
from .state import State


def committed_runs(config: Config) -> dict[str, str | None]:
    """Each table's committed run id (None: never captured, or its state is unusable — the capture says why)."""
    state, runs = State(config.data_dir), {}
    for name in config.table_names:
        try:
            runs[name] = c.run_id if (c := state.committed(name)) else None
        except CdcError:
            runs[name] = None
    return runs


def already_published(config: Config, tables: Sequence[str] | None, run_id: str,
                      committed: dict[str, str | None]) -> bool:
    """True when every selected table has committed `run_id` (`committed`: `committed_runs`) and holds no preview
    of it any more (a second `--publish RUN_ID`)."""
    state = State(config.data_dir)
    return all(state.outbox.preview(name, run_id) is None and committed[name] == run_id
               for name in tables or config.table_names)


def interrupted(config: Config | None, before: dict[str, str | None] | None) -> str:
    """Wait for the tables in progress to finish their step (a second Ctrl-C stops at once), then say what this
    command committed and what is pending."""
    if config is None or before is None:
        return "Interrupted before any capture started: nothing was changed"
    print("Interrupted: the table(s) in progress finish first (Ctrl-C again to stop at once)…", file=sys.stderr,
          flush=True)
    try:
        for thread in threading.enumerate():
            if thread is not threading.current_thread() and not thread.daemon:
                thread.join()
    except KeyboardInterrupt:
        print("Stopped at once: a table in progress may have left a run in the outbox; the next run publishes it "
              "(what it wrote in the lake without committing is never read, and is removed)", file=sys.stderr, flush=True)
        os._exit(1)  # the capture threads cannot be stopped otherwise; every step is crash-safe
    after, state = committed_runs(config), State(config.data_dir)
    committed = [f"{name} (run {run})" for name, run in after.items() if run and run != before.get(name)]
    try:
        pending = [f"{e.table} (run {e.run_id})" for name in config.table_names for e in state.outbox.pending(name)]
    except CdcError as exc:
        pending = [f"unknown ({exc})"]
    waiting = {part.split(" ")[0] for part in pending}
    untouched = [name for name in config.table_names if after[name] == before.get(name) and name not in waiting]
    parts = [f"committed {', '.join(committed)}" if committed else "nothing was committed",
             f"pending in the outbox, published by the next run: {', '.join(pending)}" if pending else "",
             f"no new run for {', '.join(untouched)} (no changes found, or not reached before Ctrl-C)"
             if untouched else ""]
    return "Interrupted: " + "; ".join(p for p in parts if p) + " — the next run goes on from here"
