"""A SQLite database file: every table of a cycle read in one transaction, opened read-only, streamed to Parquet.

SQLite types each value, not each column (a column declared INTEGER may hold text), so a column's Parquet type is
decided from its values, over the whole table, in the same transaction that reads it: only integers → BIGINT, only
reals (or reals and integers that a double holds exactly) → DOUBLE, only blobs → BLOB, anything else → text, with
each value written losslessly (an integer as its digits, a real as the shortest text that reads back to the same
double, a blob as `\\x` and its hex digits). A column without values takes its declared type's affinity. Text
stays text (an ISO date string included): give the table a `date_field`, or pin `columns`, to type it. NULL and
the empty string stay different, which a CSV export could not keep.

The version is the SHA-256 of the database file (and its `-wal` file), taken before reading: an identical file is
an identical database, so an unchanged file skips the cycle like an unchanged Kaggle version.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..config import TableConfig
from ..errors import SourceError
from ..sql import quote as ident
from ..sql import statement
from ..types import TEXT
from .base import Fetch

BATCH = 50_000
EXACT = 2**53  # integers a double holds exactly


class SqliteSource:
    """Reads each configured table (or query) of a SQLite file, read-only, in one transaction."""

    def __init__(self, path: Path, *, timeout: float = 30.0):
        self.path, self.timeout = Path(path), timeout
        self.description = f"sqlite {self.path}"

    def fetch(self, tables: Sequence[TableConfig], dest: Path, *, last_version: str | None = None) -> Fetch:
        if not self.path.is_file():
            raise SourceError(f'SQLite database {self.path} does not exist — fix "source.path" in the config')
        version = self._version()
        if version == last_version:
            return Fetch(version=version, unchanged=True)
        result = Fetch(version=version)
        uri = f"file:{urllib.parse.quote(str(self.path.resolve()))}?mode=ro"
        try:
            con = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=self.timeout,
                                  check_same_thread=False)
        except sqlite3.Error as exc:
            raise SourceError(f"Cannot open the SQLite database {self.path} read-only ({exc}) — check that the "
                              "file is readable (and, for a WAL database, that its folder is)") from None
        try:
            con.execute("BEGIN")  # one read transaction: every table comes from the same state of the file
            for table in tables:
                try:
                    result.files[table.name] = _read(con, table, Path(dest))
                except (sqlite3.Error, _TableFailed) as exc:
                    if _is_file_error(exc):
                        raise
                    result.errors[table.name] = _table_error(self.path, table, exc)
            con.execute("COMMIT")
        except sqlite3.Error as exc:
            for path in result.files.values():
                path.unlink(missing_ok=True)
            raise SourceError(f"Reading the SQLite database {self.path} failed ({exc}) — if another program "
                              "holds a write lock for long, run the capture at another time; a damaged file "
                              "needs repair (sqlite3 .recover)") from None
        finally:
            con.close()
        return result

    def _version(self) -> str:
        """`sha256:` and the first 16 hex digits of the SHA-256 of the file and its write-ahead log, if any."""
        digest = hashlib.sha256()
        for path in (self.path, self.path.with_name(self.path.name + "-wal")):
            if path.is_file():
                with open(path, "rb") as f:
                    for block in iter(lambda f=f: f.read(1 << 20), b""):
                        digest.update(block)
        return "sha256:" + digest.hexdigest()[:16]


class _TableFailed(Exception):
    "One table cannot be read."


def _read(con: sqlite3.Connection, table: TableConfig, dest: Path) -> Path:
    """Decide each column's type over the whole table, then stream it into `dest/{table}.parquet`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = statement(table.query) if table.query else f"SELECT * FROM {ident(table.name)}"
    cur = con.execute(f"SELECT * FROM ({source}) LIMIT 0")
    names = [d[0] for d in cur.description]
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise _TableFailed(f'the result has two columns named "{twice}" — give one of them an alias (AS …)')
    declared = {} if table.query else {r[1]: r[2] for r in con.execute(f"PRAGMA table_info({ident(table.name)})")}
    kinds = _column_types(con, source, names, declared, table)
    schema = pa.schema([pa.field(n, k) for n, k in zip(names, kinds, strict=True)])
    target, partial = dest / f"{table.name}.parquet", dest / f".{table.name}.parquet.partial"
    try:
        with pq.ParquetWriter(partial, schema) as writer:
            cur = con.execute(source)
            while rows := cur.fetchmany(BATCH):
                columns = zip(*rows, strict=True)
                writer.write_batch(pa.RecordBatch.from_arrays(
                    [_array(values, kind) for values, kind in zip(columns, kinds, strict=True)], schema=schema))
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return partial.replace(target)


def _column_types(con: sqlite3.Connection, source: str, names: list[str], declared: dict[str, str],
                  table: TableConfig) -> list[Any]:
    """Each column's Arrow type, from the storage classes of all its values (one scan of the table)."""
    import pyarrow as pa

    probes = []
    for i in range(len(names)):
        c = f"c{i}"
        probes += [f"max(typeof({c}) = 'integer')", f"max(typeof({c}) = 'real')", f"max(typeof({c}) = 'text')",
                   f"max(typeof({c}) = 'blob')",
                   f"max(typeof({c}) = 'integer' AND ({c} > {EXACT} OR {c} < -{EXACT}))"]
    aliased = ", ".join(f"{ident(n)} AS c{i}" for i, n in enumerate(names))
    found = con.execute(f"SELECT {', '.join(probes)} FROM (SELECT {aliased} FROM ({source}))").fetchone()
    kinds = []
    for i, name in enumerate(names):
        has_int, has_real, has_text, has_blob, big = (bool(v) for v in found[i * 5:(i + 1) * 5])
        pin = table.pinned(name)
        if (pin is not None and pin.type == TEXT) or has_text or (has_blob and (has_int or has_real)):
            kinds.append(pa.string())
        elif has_blob:
            kinds.append(pa.binary())
        elif has_real:
            kinds.append(pa.string() if big else pa.float64())
        elif has_int:
            kinds.append(pa.int64())
        else:
            kinds.append(_affinity(declared.get(name, "")))
    return kinds


def _affinity(declared: str) -> Any:
    """The Arrow type of a column without values, by SQLite's affinity rules for its declared type."""
    import pyarrow as pa

    kind = declared.upper()
    if "INT" in kind:
        return pa.int64()
    if any(word in kind for word in ("REAL", "FLOA", "DOUB")):
        return pa.float64()
    return pa.string()  # TEXT, NUMERIC, BLOB and no declared type: text holds any value that may come


def _array(values: tuple, kind: Any) -> Any:
    import pyarrow as pa

    if kind == pa.string():
        return pa.array([v if v is None or isinstance(v, str) else _text(v) for v in values], pa.string())
    if kind == pa.float64():
        return pa.array([None if v is None else float(v) for v in values], pa.float64())
    return pa.array(values, kind)


def _text(value: Any) -> str:
    """A non-text value as text that keeps it exactly."""
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    return repr(value) if isinstance(value, float) else str(value)


def _is_file_error(exc: BaseException) -> bool:
    """Errors about the database file as a whole (locked, damaged, unreadable), not about one table."""
    return isinstance(exc, sqlite3.DatabaseError) and any(
        word in str(exc) for word in ("locked", "malformed", "disk I/O", "unable to open", "not a database"))


def _table_error(path: Path, table: TableConfig, exc: BaseException) -> SourceError:
    at = f'Table "{table.name}": ' + (f'the query in SQLite database {path}' if table.query
                                       else f"table {table.name} in SQLite database {path}")
    if isinstance(exc, _TableFailed):
        return SourceError(f"{at}: {exc}")
    undecodable = re.match(r"Could not decode to UTF-8 column '(.*?)' with text", str(exc))
    if undecodable:
        return SourceError(f'{at}: column "{undecodable[1]}" holds text that is not valid UTF-8 — fix the data in '
                           f'the database, or capture the column as bytes with a "query" that selects '
                           f'CAST({ident(undecodable[1])} AS BLOB)')
    if "no such table" in str(exc) and not table.query:
        return SourceError(f'{at} does not exist ({exc}) — fix the table\'s "name" in the config (or use "query")')
    return SourceError(f'{at} could not be read ({exc}) — fix "query" (or "name") in the config')
