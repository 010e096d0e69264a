"""A PostgreSQL database: every table of a cycle read in one consistent snapshot, streamed into typed Parquet.

A fetch opens one connection, starts one `REPEATABLE READ, READ ONLY` transaction, and reads each configured table
(`SELECT * FROM schema.name`, or the table's own `query`) through ADBC's PostgreSQL driver: COPY BINARY decoded to
Arrow in C++, written batch by batch with a Parquet writer, so a table never sits whole in memory (ADBC streams
about 4× faster than psycopg 3 at the same memory: bench/postgres_bench.py). Each table runs under a savepoint:
a missing table, a denied permission or a bad query fails that table only. A failed login or a connection lost
mid-read fails the whole cycle (the tables must come from one snapshot); nothing is committed, the next cycle
reads again.

Types map to the lake's: integers, floats, booleans, text, dates and bytea keep theirs; `timestamptz` is UTC and a
`timestamp` without zone is read as UTC; `numeric(p,s)` (p ≤ 38) is `DECIMAL(p,s)`; everything else — `numeric`
without a precision (which can hold any precision, NaN and infinity), json, jsonb, uuid, arrays, time, interval,
money, enums, inet, … — arrives as PostgreSQL's own text for the value, which loses nothing. A column pinned to
VARCHAR in the table's `columns` is read as text too: the way to keep a date or timestamp holding `infinity`,
`-infinity` or a year past 294,247, which the lake's types cannot hold (the table is refused in one line).

A database has no version a cycle could compare cheaply and honestly (statistics counters are approximate and
reset; transaction ids move with any write anywhere in the cluster), so `Fetch.version` is None and every cycle
reads; the diff then finds "no changes" when nothing changed.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..config import TableConfig
from ..errors import SourceError
from ..extras import missing
from ..logs import add_secret
from ..precision import out_of_range
from ..sql import quote as ident
from ..sql import statement
from ..types import TEXT
from .base import Fetch
from .postgres_dsn import dsn_parts, with_defaults

NATIVE = {"int2", "int4", "int8", "float4", "float8", "bool", "text", "varchar", "bpchar", "date", "timestamp",
          "timestamptz", "bytea"}  # types ADBC delivers as the Arrow type the lake keeps


class _TableFailed(Exception):
    "One table cannot be read (the transaction goes on after a rollback to its savepoint)."


class PostgresSource:
    """Reads each configured table (or query) of one PostgreSQL database in one REPEATABLE READ transaction."""

    def __init__(self, dsn: str | None, *, lock_timeout: float = 60.0, statement_timeout: float = 1800.0):
        self.dsn = dsn or ""
        self.lock_timeout, self.statement_timeout = lock_timeout, statement_timeout
        self.parts = dsn_parts(self.dsn)
        add_secret(self.parts.get("password"))  # masked wherever a library's message repeats it
        self.where = "{user}@{host}:{port}/{dbname}".format(**self.parts)
        self.description = f"postgres {self.where}"

    def fetch(self, tables: Sequence[TableConfig], dest: Path, *, last_version: str | None = None) -> Fetch:
        dbapi = _driver()
        result = Fetch(version=None)
        try:
            con = dbapi.connect(with_defaults(self.dsn), autocommit=True)
        except dbapi.Error as exc:
            raise self._connect_error(exc) from None
        cur = con.cursor()
        try:
            cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            for name, seconds in (("lock_timeout", self.lock_timeout), ("statement_timeout", self.statement_timeout)):
                cur.execute(f"SET LOCAL {name} = {max(1, round(seconds * 1000))}")  # milliseconds
            for table in tables:
                cur.execute("SAVEPOINT cdc_table")
                try:
                    result.files[table.name] = self._read(cur, table, Path(dest))
                except (dbapi.Error, OSError, _TableFailed) as exc:
                    try:
                        cur.execute("ROLLBACK TO SAVEPOINT cdc_table")
                    except dbapi.Error:  # the connection itself is gone: the whole snapshot is lost
                        raise exc from None
                    result.errors[table.name] = self._table_error(table, exc)
            cur.execute("COMMIT")
        except (dbapi.Error, OSError) as exc:
            for name in result.files:  # none of this cycle's tables may be captured from a broken snapshot
                result.files[name].unlink(missing_ok=True)
            raise SourceError(f"Reading from PostgreSQL at {self.where} failed ({self._first_line(exc)}) — the "
                              "connection was lost or the server stopped; nothing was captured, the next cycle "
                              "reads again") from None
        finally:
            _close(cur, con)
        return result

    # --- one table ------------------------------------------------------------------------------------------
    def _read(self, cur: Any, table: TableConfig, dest: Path) -> Path:
        """Stream one table (or query) into `dest/{table}.parquet`, batch by batch."""
        import pyarrow.parquet as pq

        source = (statement(table.query) if table.query
                  else f"SELECT * FROM {ident(table.schema or 'public')}.{ident(table.name)}")
        plans = _plans(table, cur.adbc_execute_schema(source))
        cur.execute(f"SELECT {', '.join(p.expr for p in plans)} FROM ({source}) AS cdc_source")
        reader = cur.fetch_record_batch()
        schema = _output_schema(reader.schema, plans)
        target, partial = dest / f"{table.name}.parquet", dest / f".{table.name}.parquet.partial"
        try:
            with pq.ParquetWriter(partial, schema) as writer:
                for batch in reader:
                    writer.write_batch(_convert(batch, schema, table))
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return partial.replace(target)

    # --- errors: one line, never a password -----------------------------------------------------------------
    def _first_line(self, exc: BaseException) -> str:
        text = re.split(r"\n\s*(?:Query was:|CONTEXT:|DETAIL:|HINT:|LINE \d+:)", str(exc))[0]
        text = re.sub(r"\[libpq\] |Execution error \[\w+\]: |Failed to (?:prepare|execute) query: |"
                      r"\b(?:ERROR|FATAL): +|^(?:IO|INVALID_STATE|NOT_FOUND|INVALID_ARGUMENT|UNKNOWN|INTERNAL): ",
                      "", text.strip())
        text = re.sub(r"\s+", " ", text).strip()
        for secret in (self.parts.get("password"), os.environ.get("PGPASSWORD")):
            if secret and len(secret) >= 3:
                text = text.replace(secret, "***")
        return text[:300] or type(exc).__name__

    def _connect_error(self, exc: BaseException) -> SourceError:
        text, at = self._first_line(exc), f"PostgreSQL at {self.where}"
        if "password authentication failed" in text or "no password supplied" in text or "28P01" in text:
            fix = ('check the password (in "source.dsn", PGPASSWORD in .env, or ~/.pgpass) and the user name')
            return SourceError(f'{at} rejected the login of user "{self.parts["user"]}" — {fix}')
        if "does not exist" in text and "database" in text:
            return SourceError(f'{at}: the database "{self.parts["dbname"]}" does not exist — fix the database '
                               'name in "source.dsn" (or PGDATABASE)')
        if "pg_hba.conf" in text:
            return SourceError(f"{at} refuses connections from this host for this user ({text}) — allow it in the "
                               "server's pg_hba.conf or use another user")
        if "permission denied" in text:
            return SourceError(f"{at} refused the connection ({text}) — grant the user CONNECT on the database")
        return SourceError(f"Cannot connect to {at} ({text}) — check that the server runs and that host and port in "
                           '"source.dsn" (or PGHOST/PGPORT) are right; the next cycle tries again')

    def _table_error(self, table: TableConfig, exc: BaseException) -> SourceError:
        text, state = self._first_line(exc), getattr(exc, "sqlstate", None)
        what = (f"the query of table \"{table.name}\"" if table.query
                else f"table {table.schema or 'public'}.{table.name}")
        at = f'Table "{table.name}": {what} in PostgreSQL at {self.where}'
        if isinstance(exc, _TableFailed):
            return SourceError(f"{at}: {exc}")
        if state == "55P03" or "due to lock timeout" in text:
            return SourceError(f"{at} is locked by another session for longer than {self.lock_timeout:g} s "
                               '("source.lock_timeout") — find the session holding it (pg_locks, pg_stat_activity), '
                               'or raise "source.lock_timeout"; the next cycle tries again')
        if state == "57014" or "due to statement timeout" in text:
            return SourceError(f"{at} took longer than {self.statement_timeout:g} s to read "
                               '("source.statement_timeout") — raise "source.statement_timeout" if the table is that '
                               "large, or check the server's load; the next cycle tries again")
        if state == "42P01" and not table.query:
            return SourceError(f'{at} does not exist — fix the table\'s "name" or "schema" in the config (names are '
                               'case-sensitive; use "query" for other names)')
        if state == "42501":
            return SourceError(f"{at} cannot be read: permission denied — GRANT SELECT on it to user "
                               f'"{self.parts["user"]}" (and USAGE on its schema)')
        if table.query and state and state.startswith("42"):
            return SourceError(f'{at} is not valid ({text}) — fix "query" in the config')
        return SourceError(f"{at} could not be read ({text}) — if a value does not fit its type, pin the column "
                           'to "VARCHAR" in the table\'s "columns"; the next cycle tries again')


class _Plan:
    """One output column: the SQL that selects it, and the Arrow type it is written as (None: as delivered)."""

    def __init__(self, name: str, expr: str, decimal: tuple[int, int] | None = None):
        self.name, self.expr, self.decimal = name, expr, decimal


def _plans(table: TableConfig, schema: Any) -> list[_Plan]:
    """Select each column as ADBC delivers it when the lake keeps that type, else as PostgreSQL's text."""
    plans, seen = [], set()
    for field in schema:
        if field.name in seen:
            raise _TableFailed(f'the result has two columns named "{field.name}" — give one of them an alias '
                               "(AS …) in the query")
        seen.add(field.name)
        meta = {k.decode(): v.decode() for k, v in (field.metadata or {}).items()}
        kind, col = meta.get("POSTGRESQL:type", ""), f"cdc_source.{ident(field.name)}"
        pin = table.pinned(field.name)
        typmod = int(meta.get("POSTGRESQL:typmod", "-1") or -1)
        if pin is not None and pin.type == TEXT:
            plans.append(_Plan(field.name, f"{col}::text AS {ident(field.name)}"))
        elif kind in NATIVE:
            plans.append(_Plan(field.name, col))
        elif kind == "numeric" and typmod >= 4 and ((typmod - 4) >> 16) <= 38:
            precision, scale = (typmod - 4) >> 16, (typmod - 4) & 0xFFFF
            plans.append(_Plan(field.name, col, (precision, scale)) if 0 <= scale <= precision
                         else _Plan(field.name, f"{col}::text AS {ident(field.name)}"))
        else:
            plans.append(_Plan(field.name, f"{col}::text AS {ident(field.name)}"))
    return plans


def _output_schema(delivered: Any, plans: list[_Plan]) -> Any:
    """The Parquet schema: decimals as decimal128(p,s), timestamps in UTC, no driver metadata."""
    import pyarrow as pa

    fields = []
    for field, plan in zip(delivered, plans, strict=True):
        kind = field.type
        if plan.decimal:
            kind = pa.decimal128(*plan.decimal)
        elif pa.types.is_timestamp(kind):
            kind = pa.timestamp(kind.unit, tz="UTC")  # timestamptz is UTC already; a timestamp is read as UTC
        elif isinstance(kind, pa.ExtensionType):
            kind = kind.storage_type
        fields.append(pa.field(field.name, kind))
    return pa.schema(fields)


def _convert(batch: Any, schema: Any, table: TableConfig) -> Any:
    """One delivered batch in the output schema."""
    import pyarrow as pa

    columns = []
    for column, field in zip(batch.columns, schema, strict=True):
        if isinstance(column.type, pa.ExtensionType):
            column = column.storage
        if column.type != field.type:
            try:
                column = column.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                kind = (f"DECIMAL({field.type.precision},{field.type.scale})" if pa.types.is_decimal(field.type)
                        else str(field.type))
                raise _TableFailed(f'column "{field.name}" has a value that does not fit {kind} ({exc}) — pin '
                                   'it to "VARCHAR" in the table\'s "columns"') from None
        if beyond := out_of_range(column):
            raise _TableFailed(f'column "{field.name}" holds {beyond}, which the lake\'s dates and timestamps '
                               'cannot hold — pin it to "VARCHAR" in the table\'s "columns" to keep PostgreSQL\'s '
                               "text, or map it in a \"query\" (e.g. NULLIF(col, 'infinity'))")
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _driver() -> Any:
    try:
        from adbc_driver_postgresql import dbapi
    except ImportError:
        raise missing("the postgres source", "adbc_driver_postgresql") from None
    return dbapi


def _close(cur: Any, con: Any) -> None:
    """Close cursor then connection; a broken connection may refuse either, which changes nothing."""
    for thing in (cur, con):
        with contextlib.suppress(Exception):
            thing.close()
