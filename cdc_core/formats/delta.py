"""Delta Lake tables (delta-rs) at `{lake}/delta/{table}`: one commit per run, change data feed on.

- The first capture creates the table from the snapshot with `delta.enableChangeDataFeed=true`.
- A run with change rows is ONE MERGE commit: D deletes the key, I and U upsert it (replay-safe: an I whose key
  exists updates it, a D whose key is gone does nothing). The table's change data feed then shows insert /
  update_preimage / update_postimage / delete rows in the run's I/U/D counts. An added column enters in the same
  MERGE (`merge_schema`); rows the run did not touch hold NULL in it, as in the snapshot.
- A run that removes a column or widens one (int64 → string, …) cannot be a MERGE: Delta without column mapping
  has no metadata-only drop, no string widening, and delta-rs refuses schema evolution on column-mapped tables.
  That run is ONE overwrite commit of the snapshot with the new schema: the current state and time travel stay
  exact, and the change feed of that version shows every old row deleted and every new row inserted, which
  replayed still gives the right state (Spark does the same for `overwriteSchema`). The commit says why in its
  `cdc.schema_change` metadata; the run's own I/U/D rows stay in the lake's cdc file.
- A run without change rows or schema change makes no commit.
- Every commit carries `cdc.run_id` and `cdc.token` in its metadata and the app transaction (`cdc_core`, run id as
  a number). The newest commit's run is checked before writing (delta-rs does not refuse a second commit on its
  own): the run itself is applied already; a run the lake never committed (a writer stopped between this table
  and the lake's link) is undone first by a RESTORE commit to the version of the newest run of the lake's history,
  which carries that run's id and `cdc.rewound_to` (the versions between are left out of time travel). When that
  version can no longer be restored (cleaned up), the run overwrites the table with its snapshot instead.
- Another writer committing first (`CommitFailedError`) raises LakeError: the run lost the race.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pyarrow as pa

from ..config import LakeConfig, TableFormatConfig
from ..errors import LakeError
from ..logs import first_line
from .base import CommitConflict, FormatRun, run_number
from .changes import DELETE, OP, UPSERT, change_rows, schema_change, snapshot_reader, snapshot_schema
from .runs import RUN_KEY, TOKEN_KEY, RunBookkeeping, RunState
from .storage import delta_storage_options, lake_uri

if TYPE_CHECKING:
    from deltalake import DeltaTable

APP_ID = "cdc_core"
REWOUND = "cdc.rewound_to"  # on a restore (or rewrite): the versions after this one, before the commit, are undone
TABLE_CONFIG = {"delta.enableChangeDataFeed": "true"}
log = logging.getLogger("cdc_core")


def _q(column: str) -> str:
    """A column name quoted for delta-rs SQL predicates."""
    return "`" + column.replace("`", "``") + "`"


class DeltaFormat(RunBookkeeping):
    """Delta tables at `{lake}/delta/{table}`, local or on S3."""

    name, title, commit_word = "delta", "Delta", "commit"
    cleaned_up = "its older versions were cleaned up (delta.logRetentionDuration)"

    def __init__(self, config: TableFormatConfig, lake: LakeConfig):
        self.lake = lake
        self._options: dict[str, str] | None = None

    def uri(self, table: str) -> str:
        return lake_uri(self.lake, "delta", table)

    @property
    def storage_options(self) -> dict[str, str] | None:
        if self._options is None and self.lake.is_s3:
            self._options = delta_storage_options(self.lake)
        return self._options

    def _open(self, table: str, version: int | None = None) -> DeltaTable | None:
        """The table as this writer sees it for a commit (the tests replace it with a stale view)."""
        return self._read(table, version)

    def _read(self, table: str, version: int | None = None) -> DeltaTable | None:
        """The table as it is now (its history numbers commits from the version it holds)."""
        from deltalake import DeltaTable
        from deltalake.exceptions import DeltaError, TableNotFoundError

        try:
            return DeltaTable(self.uri(table), version=version, storage_options=self.storage_options)
        except TableNotFoundError:
            return None
        except DeltaError as exc:
            raise LakeError(f'Cannot read the Delta table of "{table}" at {self.uri(table)} ({first_line(exc)}) '
                            "— check the lake is reachable") from None

    def _called(self, table: str) -> str:
        return f'for "{table}" at {self.uri(table)}'

    def _where(self, dt: DeltaTable) -> str:
        return dt.table_uri

    # --- writing -------------------------------------------------------------------------------------------
    def apply(self, run: FormatRun) -> int:
        """Apply `run` in one commit (none if it changes nothing) and return the table's version after it; a run
        the lake never committed on top of the table is undone first."""
        from deltalake import write_deltalake
        from deltalake.exceptions import CommitFailedError, DeltaError

        dt = self._open(run.table)
        schema = snapshot_schema(run)
        try:
            if dt is None:  # the first capture, or a table format switched on later: the snapshot is the state
                write_deltalake(self.uri(run.table), snapshot_reader(run), mode="error", name=run.table,
                                configuration=TABLE_CONFIG, storage_options=self.storage_options,
                                commit_properties=_commit(run.run_id, run.token, "create"))
                return self._existing(run.table).version()
            at = self._standing(run.table, dt, run)
            if at.version is not None:
                return at.version  # applied already: a retry
            rewound = self._rewind(dt, run, at.last) if at.stray else None
            change = schema_change(pa.schema(dt.schema().to_arrow()), schema)
            rows = None if run.first or change.rewrite or rewound is not None else change_rows(run, schema)
            if rows:
                self._merge(dt, run, rows.rows, schema, added=bool(change.added))
            elif rows is None or change.added:  # a new column but no change row names it: rewrite as well
                why = ({REWOUND: str(rewound)} if rewound is not None
                       else {"cdc.schema_change": "first capture again" if run.first else change.describe()})
                write_deltalake(dt, snapshot_reader(run), mode="overwrite", schema_mode="overwrite",
                                commit_properties=_commit(run.run_id, run.token, "rewrite", why))
            else:
                return dt.version()
        except CommitFailedError as exc:
            raise _conflict(run, exc) from None
        except DeltaError as exc:
            if "already exists" in str(exc):  # another writer created the table first
                raise _conflict(run, exc) from None
            raise LakeError(f'Cannot write the Delta table of "{run.table}" at {self.uri(run.table)} '
                            f"({first_line(exc)}) — check the lake is reachable and writable; the run stays "
                            "pending and is retried") from None
        except OSError as exc:
            raise LakeError(f'Cannot write the Delta table of "{run.table}" at {self.uri(run.table)} ({exc}) — '
                            "check the lake is reachable and writable; the run stays pending and is retried") \
                from None
        return dt.version()  # the MERGE or overwrite moved `dt` to its own commit, not to a later writer's

    def _merge(self, dt: DeltaTable, run: FormatRun, rows: pa.Table, schema: pa.Schema, *, added: bool) -> None:
        on = " AND ".join(f"t.{_q(k)} = s.{_q(k)}" for k in run.key)
        values = {f"t.{_q(c)}": f"s.{_q(c)}" for c in schema.names}
        (dt.merge(rows, on, source_alias="s", target_alias="t", merge_schema=added,
                  commit_properties=_commit(run.run_id, run.token, "merge"))
         .when_matched_delete(f"s.{OP} = '{DELETE}'")
         .when_matched_update(values, f"s.{OP} = '{UPSERT}'")
         .when_not_matched_insert(values, f"s.{OP} = '{UPSERT}'")
         .execute())

    def _rewind(self, dt: DeltaTable, run: FormatRun, last: tuple[str, str | None] | None) -> int | None:
        """Undo the commits of runs the lake never committed: restore the version of the newest run of `run`'s
        history (a commit of its own). None when restored; else the version a rewrite of the run goes back to (-1:
        none is left)."""
        from deltalake.exceptions import CommitFailedError, DeltaError

        target = self._state(run.table, dt, run.follows)
        stray = f"run {last[0]}" if last else "commits"
        if target is not None:
            try:
                dt.restore(target.version, commit_properties=_commit(
                    target.run_id, target.token, "restore", {REWOUND: str(target.version)}))
            except CommitFailedError:
                raise
            except DeltaError as exc:  # its files or log were cleaned up: the run rewrites the table instead
                log.warning("%s: the Delta table holds %s, which the lake never committed, and its version %s "
                            "(run %s) cannot be restored (%s) — run %s rewrites the table from its snapshot",
                            run.table, stray, target.version, target.run_id, first_line(exc), run.run_id)
                return target.version
            log.warning("%s: the Delta table holds %s, which the lake never committed (its writer stopped before "
                        "the lake's commit) — restored version %s (run %s) before applying run %s", run.table,
                        stray, target.version, target.run_id, run.run_id)
            return None
        log.warning("%s: the Delta table holds %s, which the lake never committed, and no version of the lake's "
                    "history — run %s rewrites the table from its snapshot", run.table, stray, run.run_id)
        return -1

    # --- reading -------------------------------------------------------------------------------------------
    def _applied(self, table: str, dt: DeltaTable, run_id: str) -> bool:
        return self._transaction(dt) >= run_number(run_id)

    def _transaction(self, dt: DeltaTable) -> int:
        """The app transaction's version: the run number of the table's last run (a restore's is the run restored)."""
        done = dt.transaction_version(APP_ID)
        if done is None:
            raise LakeError(f"{dt.table_uri} holds a Delta table that cdc_core did not write (no {APP_ID} "
                            "transaction) — move it away or point the lake elsewhere")
        return done

    def _last(self, table: str, dt: DeltaTable) -> tuple[str, str | None] | None:
        """The table's last run (id, token): the newest commit holding a run's state."""
        self._transaction(dt)
        found = self._state(table, dt, lambda ran: True)
        return (found.run_id, found.token) if found else None

    def _states(self, table: str, dt: DeltaTable) -> Iterator[RunState]:
        """The commits holding a run's state, newest first, leaving out the commits a rewind undid (when the newest
        20 commits are not enough, the whole history is read and its newest commits are given again)."""
        latest = self._read(table) or dt  # delta-rs numbers the newest commits from the version a table holds
        for limit in (20, None):  # the run asked about is almost always among the last commits
            history = latest.history(limit)  # newest first
            undone_above = dt.version()  # a later writer's commits are not `dt`'s state
            for commit in history:
                if commit["version"] > undone_above:
                    continue
                if commit.get(RUN_KEY):
                    yield RunState(commit[RUN_KEY], commit.get(TOKEN_KEY), commit["version"], commit)
                undone_above = int(commit[REWOUND]) if commit.get(REWOUND) else commit["version"]
            if limit is None or len(history) < limit:
                break

    def _rows(self, table: str, dt: DeltaTable, version: int | None) -> pa.Table:
        return (dt if version is None else self._open(table, version)).to_pyarrow_table()


def _commit(run_id: str, token: str | None, operation: str, metadata: dict[str, str] | None = None):
    """A commit's properties: the run (id, token, app transaction) whose state it holds, and what it did."""
    from deltalake.transaction import CommitProperties, Transaction

    custom = {RUN_KEY: run_id, "cdc.operation": operation, **({TOKEN_KEY: token} if token else {}), **(metadata or {})}
    return CommitProperties(custom_metadata=custom,
                            app_transactions=[Transaction(app_id=APP_ID, version=run_number(run_id))])


def _conflict(run: FormatRun, exc: Exception) -> CommitConflict:
    return CommitConflict(f'Another writer committed to the Delta table of "{run.table}" first, so run {run.run_id} '
                          f"was not applied ({first_line(exc)}) — the run lost the race; rebase on the lake and "
                          "retry")
