"""Iceberg tables (pyiceberg) named `{namespace}.{table}` in the configured catalog: one transaction per run.

- Catalog: `"iceberg": {"catalog": {…}}` (pyiceberg properties, catalog name `cdc`); for a local lake the default
  is SQLite at `{lake}/iceberg/catalog.db` with the warehouse `{lake}/iceberg`. For an S3 lake the `s3.*` FileIO
  settings (endpoint, region, credentials) come from the lake config and boto3's environment unless given.
- The first capture creates the table with the snapshot in one transaction (table property `cdc.key`).
- A run is ONE catalog commit: the schema change (columns added by `union_by_name`, removed ones dropped — a
  metadata change, old data files are not touched), then ONE copy-on-write overwrite snapshot: every data file
  holding a key of the run's I/U/D rows is rewritten without those rows and the I/U rows are appended
  (replay-safe), then the table property `cdc.last_run_id`. Each snapshot's summary carries `cdc.run_id`.
- Iceberg cannot promote int64/decimal/… to string: a widened column is dropped and added again as string (a new
  field id), and that run overwrites the table with the snapshot (a delete and an append snapshot).
- A run with a schema change but no change rows appends an empty snapshot, so time travel to it has its schema.
- `cdc.last_run_id` and `cdc.last_token` are checked before writing: the run itself is applied already; a run the
  lake never committed (a writer stopped between this table and the lake's link) is undone in the run's own
  catalog commit, which first rolls the main branch back to the snapshot of the newest run of the lake's history
  (time travel then never sees the undone run). If the schema changed since that snapshot, or it was expired, the
  run overwrites the table with its snapshot.
- A concurrent commit (CommitFailedException, or a conflict found by pyiceberg's validation) raises LakeError: the
  run lost the race.
"""

from __future__ import annotations

import itertools
import logging
import threading
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..config import LakeConfig, TableFormatConfig
from ..errors import LakeError
from ..logs import first_line
from .base import CommitConflict, FormatRun
from .changes import OP, UPSERT, change_rows, schema_change, snapshot_reader, snapshot_schema
from .runs import RUN_KEY, TOKEN_KEY, RunBookkeeping, RunState
from .storage import iceberg_file_io, lake_uri

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table, Transaction

CATALOG_NAME = "cdc"
LAST_RUN = "cdc.last_run_id"
LAST_TOKEN = "cdc.last_token"
log = logging.getLogger("cdc_core")


class IcebergFormat(RunBookkeeping):
    """Iceberg tables in one catalog namespace, their data in the lake (or the catalog's warehouse)."""

    name, title, commit_word, cleaned_up = "iceberg", "Iceberg", "snapshot", "its older snapshots were expired"

    def __init__(self, config: TableFormatConfig, lake: LakeConfig):
        self.config, self.lake = config, lake
        self._catalog: Catalog | None = None
        self._lock = threading.Lock()

    def catalog_properties(self) -> dict[str, str]:
        """The pyiceberg catalog properties: the configured ones, else SQLite in the local lake."""
        props = dict(self.config.catalog)
        if not props:
            folder = self.lake.path.resolve() / "iceberg"
            folder.mkdir(parents=True, exist_ok=True)
            props = {"type": "sql", "uri": f"sqlite:///{folder / 'catalog.db'}", "warehouse": folder.as_uri()}
        props.setdefault("warehouse", lake_uri(self.lake, "iceberg") if self.lake.is_s3
                         else (self.lake.path.resolve() / "iceberg").as_uri())
        return {**iceberg_file_io(self.lake), **props}

    @property
    def catalog(self) -> Catalog:
        """The catalog, connected once (tables are captured in parallel threads) with the namespace made."""
        with self._lock:
            if self._catalog is None:
                from pyiceberg.catalog import load_catalog

                catalog = load_catalog(CATALOG_NAME, **self.catalog_properties())
                try:
                    catalog.create_namespace_if_not_exists(self.config.namespace)
                except Exception:  # another process made it at the same moment (a SQLite unique-key error)
                    if not catalog.namespace_exists(self.config.namespace):
                        raise
                self._catalog = catalog
            return self._catalog

    def identifier(self, table: str) -> tuple[str, str]:
        return (self.config.namespace, table)

    def _open(self, table: str) -> Table | None:
        from pyiceberg.exceptions import NoSuchTableError

        try:
            return self.catalog.load_table(self.identifier(table))
        except NoSuchTableError:
            return None

    def _called(self, table: str) -> str:
        return ".".join(self.identifier(table))

    def _where(self, table: Table) -> str:
        return ".".join(table.name())

    # --- writing -------------------------------------------------------------------------------------------
    def apply(self, run: FormatRun) -> int:
        """Apply `run` in one catalog commit (none if it changes nothing); return the table's snapshot id. A run the
        lake never committed on top of the table is rolled back in the same commit."""
        from pyiceberg.exceptions import CommitFailedException, TableAlreadyExistsError, ValidationException

        table = self._open(run.table)
        at = None if table is None else self._standing(run.table, table, run)
        if at is not None and at.version is not None:
            return at.version  # applied already: a retry
        schema = snapshot_schema(run)
        summary = {RUN_KEY: run.run_id, **({TOKEN_KEY: run.token} if run.token else {})}
        last = {LAST_RUN: run.run_id, LAST_TOKEN: run.token or ""}
        try:
            if table is None:  # the first capture, or a table format switched on later: the snapshot is the state
                tx = self.catalog.create_table_transaction(
                    self.identifier(run.table), schema=schema, properties={"cdc.key": ",".join(run.key), **last})
                tx.append(snapshot_reader(run), snapshot_properties=summary)
                return self._reached(run.table, tx.commit_transaction(), run.run_id)
            tx = table.transaction()
            stray = at.stray
            whole = stray and not self._rewind(tx, table, run, at.last)  # no rollback, or not to the current schema
            change = schema_change(tx.table_metadata.schema().as_arrow(), schema)
            rows = None if run.first or change.retyped or whole else change_rows(run, schema)
            if rows is not None and not rows and not (change.added or change.removed or stray):
                return table.current_snapshot().snapshot_id
            _evolve(tx, change, schema)
            target = tx.table_metadata.schema().as_arrow()
            if rows is None:
                with warnings.catch_warnings():  # pyiceberg warns when the table it overwrites is empty
                    warnings.filterwarnings("ignore", "Delete operation did not match any records")
                    tx.overwrite(_aligned(snapshot_reader(run), target), snapshot_properties=summary)
            elif rows:
                _copy_on_write(tx, table, run.key, rows.rows, summary)
            else:
                tx.append(target.empty_table(), snapshot_properties=summary)
            tx.set_properties(last)
            table = tx.commit_transaction()
        except (CommitFailedException, ValidationException, TableAlreadyExistsError) as exc:
            raise CommitConflict(f"Another writer committed to the Iceberg table {'.'.join(self.identifier(run.table))}"
                                 f" first, so run {run.run_id} was not applied ({first_line(exc)}) — the run lost "
                                 "the race; rebase on the lake and retry") from None
        except _backend_errors() as exc:
            raise LakeError(f'Cannot write the Iceberg table of "{run.table}" ({first_line(exc)}) — check the lake '
                            "and the catalog are reachable and writable; the run stays pending and is retried") \
                from None
        return self._reached(run.table, table, run.run_id)

    def _rewind(self, tx: Transaction, table: Table, run: FormatRun, last: tuple[str, str | None]) -> bool:
        """Roll the transaction's main branch back to the snapshot of the newest run of `run`'s history, undoing
        the runs the lake never committed; False when there is none, or the schema changed since it (the run then
        overwrites the table)."""
        from pyiceberg.table.update.snapshot import ManageSnapshots

        stray, name = last[0], ".".join(table.name())
        back = self._state(run.table, table, run.follows)
        if back is None:
            log.warning("%s: the Iceberg table %s holds run %s, which the lake never committed, and no snapshot of "
                        "the lake's history — run %s rewrites the table from its snapshot", run.table, name, stray,
                        run.run_id)
            return False
        ManageSnapshots(tx).rollback_to_snapshot(back.version)
        log.warning("%s: the Iceberg table %s holds run %s, which the lake never committed (its writer stopped "
                    "before the lake's commit) — rolled back to snapshot %s (run %s) in the commit of run %s",
                    run.table, name, stray, back.version, back.run_id, run.run_id)
        return back.record.schema_id == tx.table_metadata.current_schema_id

    # --- reading -------------------------------------------------------------------------------------------
    def _last(self, table: str, found: Table) -> tuple[str, str | None]:
        """The table's last run: its id and token."""
        last = found.properties.get(LAST_RUN)
        if last is None:
            raise LakeError(f'The Iceberg table {".".join(found.name())} was not written by cdc_core (no {LAST_RUN} '
                            'property) — drop it or choose another "iceberg.namespace"')
        return last, found.properties.get(LAST_TOKEN)

    def _applied(self, table: str, found: Table, run_id: str) -> bool:
        return self._last(table, found)[0] >= run_id

    def _states(self, table: str, found: Table) -> Iterator[RunState]:
        """The main branch's snapshots holding a run's state, newest first (a rolled back run's are not on it)."""
        from pyiceberg.table.snapshots import ancestors_of

        for snapshot in ancestors_of(found.current_snapshot(), found.metadata):
            ran = snapshot.summary[RUN_KEY] if snapshot.summary else None
            if ran:
                yield RunState(ran, snapshot.summary[TOKEN_KEY], snapshot.snapshot_id, snapshot)

    def _rows(self, table: str, found: Table, version: int | None) -> pa.Table:
        return found.scan(snapshot_id=version).to_arrow()


def _backend_errors() -> tuple[type[Exception], ...]:
    """What the file system, Glue (botocore) and SQL (SQLAlchemy) catalogs raise when storage fails."""
    errors: list[type[Exception]] = [OSError]
    try:
        from botocore.exceptions import BotoCoreError, ClientError

        errors += [BotoCoreError, ClientError]
    except ImportError:
        pass
    try:
        from sqlalchemy.exc import SQLAlchemyError

        errors.append(SQLAlchemyError)
    except ImportError:
        pass
    return tuple(errors)


def _evolve(tx: Transaction, change, schema: pa.Schema) -> None:
    """Drop removed and widened columns, then add new and widened ones (by name) — in the run's transaction."""
    if change.removed or change.retyped:
        with tx.update_schema() as update:
            for column in change.removed + change.retyped:
                update.delete_column(column)
    if change.added or change.retyped:
        with tx.update_schema() as update:
            update.union_by_name(schema)


def _aligned(reader: pa.RecordBatchReader, target: pa.Schema) -> pa.RecordBatchReader:
    """The batches with the table's columns, in its order (missing ones NULL)."""
    plain = pa.schema([pa.field(f.name, f.type) for f in target])

    def batches():
        for batch in reader:
            yield pa.RecordBatch.from_arrays(
                [batch.column(f.name).cast(f.type) if f.name in batch.schema.names
                 else pa.nulls(batch.num_rows, f.type) for f in plain], schema=plain)

    return pa.RecordBatchReader.from_batches(plain, batches())


def _copy_on_write(tx: Transaction, table: Table, key: tuple[str, ...], rows: pa.Table,
                   summary: dict[str, str]) -> None:
    """One overwrite snapshot: rewrite the data files holding the run's keys without them, append the upserts."""
    from pyiceberg.expressions import AlwaysTrue
    from pyiceberg.io.pyarrow import ArrowScan, _dataframe_to_data_files

    meta = tx.table_metadata
    schema = meta.schema()
    keys = rows.select(list(key))
    upserts = rows.filter(pc.equal(rows[OP], UPSERT)).drop_columns([OP])
    counter = itertools.count()
    with tx.update_snapshot(snapshot_properties=summary).overwrite() as producer:
        def write(data: pa.Table) -> None:
            for data_file in _dataframe_to_data_files(table_metadata=meta, df=data, io=table.io,
                                                      write_uuid=producer.commit_uuid, counter=counter):
                producer.append_data_file(data_file)

        for task in table.scan(snapshot_id=meta.current_snapshot_id).plan_files():  # after a rollback, if any
            hit = _matches(ArrowScan(meta, table.io, schema.select(*key), AlwaysTrue()).to_table([task]), keys, key)
            if not pc.any(hit).as_py():
                continue
            producer.delete_data_file(task.file)
            kept = ArrowScan(meta, table.io, schema, AlwaysTrue()).to_table([task]).filter(pc.invert(hit))
            if kept.num_rows:
                write(kept)
        if upserts.num_rows:
            write(_aligned(pa.RecordBatchReader.from_batches(upserts.schema, upserts.to_batches()),
                           schema.as_arrow()).read_all())


def _matches(candidates: pa.Table, keys: pa.Table, key: tuple[str, ...]) -> pa.Array:
    """A mask over `candidates`: whose key is among `keys` (a semi-join, so composite keys match exactly)."""
    if len(key) == 1:
        return pc.is_in(candidates[key[0]], value_set=keys[key[0]].combine_chunks())
    position = pa.array(np.arange(candidates.num_rows))
    found = candidates.select(list(key)).append_column("__cdc_pos", position).join(
        keys, keys=list(key), join_type="left semi")["__cdc_pos"]
    return pc.is_in(position, value_set=found.combine_chunks())
