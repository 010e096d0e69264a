"""The real `clientes` versions (tests/data) as database tables: SQLite and PostgreSQL, typed like an app's."""

from __future__ import annotations

import csv
import sqlite3
from datetime import datetime
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
V1, V2 = DATA / "clientes_20250918.csv", DATA / "clientes_20250922.csv"
KEY = "idCliente"
FLAGS = ["flEmail", "flTwitch", "flYouTube", "flBlueSky", "flInstagram"]
COLUMNS = [KEY, *FLAGS, "qtdePontos", "DtCriacao", "DtAtualizacao"]
# One table config for every source: the CSV's dialect, the date field, DtCriacao's layout pinned
CLIENTES = {"name": "clientes", "pk": KEY, "sep": ";", "date_field": "DtAtualizacao",
            "columns": {"DtCriacao": {"type": "TIMESTAMP", "format": "%Y-%m-%d %H:%M:%S.%g"}}}


def rows(path: Path) -> list[tuple]:
    """The file's rows as an app stores them: text key, integer flags and points, timestamps as text."""
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter=";")
        assert next(reader) == COLUMNS
        return [(r[0], *(int(v) for v in r[1:7]), r[7], r[8]) for r in reader]


def sqlite_put(db: Path, path: Path) -> None:
    """Make the SQLite table `clientes` hold exactly the file's rows, by row-level changes in one transaction."""
    new = rows(path)
    con = sqlite3.connect(db)
    with con:
        con.execute('CREATE TABLE IF NOT EXISTS clientes ("idCliente" TEXT PRIMARY KEY, "flEmail" INTEGER, '
                    '"flTwitch" INTEGER, "flYouTube" INTEGER, "flBlueSky" INTEGER, "flInstagram" INTEGER, '
                    '"qtdePontos" INTEGER, "DtCriacao" DATETIME, "DtAtualizacao" DATETIME)')
        keys = {r[0] for r in new}
        gone = [(k,) for (k,) in con.execute('SELECT "idCliente" FROM clientes') if k not in keys]
        con.executemany('DELETE FROM clientes WHERE "idCliente" = ?', gone)
        con.executemany(f"INSERT OR REPLACE INTO clientes VALUES ({', '.join('?' * len(COLUMNS))})", new)
    con.close()


def arrow(path: Path):
    """The file as an Arrow table typed like the PostgreSQL table."""
    import pyarrow as pa

    data = rows(path)
    ts = [[datetime.strptime(r[i], "%Y-%m-%d %H:%M:%S.%f") for r in data] for i in (7, 8)]
    return pa.table({KEY: [r[0] for r in data],
                     **{f: pa.array([r[1 + i] for r in data], pa.int16()) for i, f in enumerate(FLAGS)},
                     "qtdePontos": pa.array([r[6] for r in data], pa.int64()),
                     "DtCriacao": pa.array(ts[0], pa.timestamp("ms")), "DtAtualizacao": pa.array(ts[1], pa.timestamp("ms"))})


def pg_create(db, path: Path, table: str = "clientes") -> None:
    """A PostgreSQL table holding the file's rows."""
    db.sql(f'CREATE TABLE {table} ("idCliente" text PRIMARY KEY, "flEmail" smallint, "flTwitch" smallint, '
           '"flYouTube" smallint, "flBlueSky" smallint, "flInstagram" smallint, "qtdePontos" bigint, '
           '"DtCriacao" timestamp(3), "DtAtualizacao" timestamp(3))')
    db.ingest(table, arrow(path))


def pg_change_to(db, path: Path) -> None:
    """Bring the PostgreSQL table to the file's rows with real DELETE, UPDATE and INSERT statements."""
    pg_create(db, path, "clientes_next")
    cols = ", ".join(f'"{c}" = n."{c}"' for c in COLUMNS[1:])
    db.sql('DELETE FROM clientes c WHERE NOT EXISTS (SELECT 1 FROM clientes_next n WHERE n."idCliente" = c."idCliente")',
           f'UPDATE clientes c SET {cols} FROM clientes_next n WHERE n."idCliente" = c."idCliente" '
           "AND (c.*) IS DISTINCT FROM (n.*)",
           'INSERT INTO clientes SELECT * FROM clientes_next n WHERE NOT EXISTS '
           '(SELECT 1 FROM clientes c WHERE c."idCliente" = n."idCliente")',
           "DROP TABLE clientes_next")
