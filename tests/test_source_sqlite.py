"""The sqlite source: lossless column types from SQLite's per-value types, read-only, skips an unchanged file."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from cdc_core import run_once
from cdc_core.config import TableConfig, parse_config
from cdc_core.errors import SourceError
from cdc_core.sources.sqlite import SqliteSource

from .clientes_db import KEY, V1, V2, sqlite_put
from .conftest import run_cli, write_config


def config(folder: Path, tables: list[dict], db: str = "shop.db"):
    return parse_config({"source": {"type": "sqlite", "path": db}, "lake": "lake", "data_dir": "data",
                         "tables": tables}, base_dir=folder)


def full_load(folder: Path, table: str) -> Path:
    return folder / "lake" / "full-load" / table / f"{table}.parquet"


def lake_types(path: Path) -> dict[str, str]:
    return {n: t for n, t, *_ in duckdb.sql(f"DESCRIBE SELECT * FROM '{path}'").fetchall()}


def test_each_column_gets_the_type_all_its_values_share_and_no_value_changes(tmp_path: Path):
    con = sqlite3.connect(tmp_path / "shop.db")
    con.execute("CREATE TABLE t (id TEXT, n INTEGER, r REAL, s TEXT, b BLOB, mixed, big NUMERIC, "
                "empty_int INTEGER, empty_real DOUBLE, empty_text VARCHAR(9), empty_any)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, NULL)", [
        ("a", 9007199254740993, 0.1, "", b"\x00\xff", "x", 2**60),
        ("b", None, 1e20, None, None, 7, 1.5),
        ("c", -1, 2.0, "007", b"", 2.5, None)])
    con.commit()
    con.close()
    assert run_once(config(tmp_path, [{"name": "t", "pk": "id"}])).ok
    path = full_load(tmp_path, "t")
    assert lake_types(path) == {"id": "VARCHAR", "n": "BIGINT", "r": "DOUBLE", "s": "VARCHAR", "b": "BLOB",
                                "mixed": "VARCHAR", "big": "VARCHAR", "empty_int": "BIGINT",
                                "empty_real": "DOUBLE", "empty_text": "VARCHAR", "empty_any": "VARCHAR"}
    rows = {r["id"]: r for r in pq.read_table(path).to_pylist()}
    assert [rows[k]["n"] for k in "abc"] == [9007199254740993, None, -1]  # a 64-bit integer, exactly
    assert [rows[k]["r"] for k in "abc"] == [0.1, 1e20, 2.0]
    assert [rows[k]["s"] for k in "abc"] == ["", None, "007"]  # the empty string is not NULL
    assert [rows[k]["b"] for k in "abc"] == [b"\x00\xff", None, b""]
    assert [rows[k]["mixed"] for k in "abc"] == ["x", "7", "2.5"]  # text and numbers: each as its own text
    assert [rows[k]["big"] for k in "abc"] == ["1152921504606846976", "1.5", None]  # beyond a double: text


def test_the_file_is_only_read_and_an_unchanged_file_skips_the_cycle(tmp_path: Path):
    db = tmp_path / "shop.db"
    sqlite_put(db, V1)
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    path = write_config(tmp_path, source={"type": "sqlite", "path": "shop.db"},
                        tables=[{"name": "clientes", "pk": KEY, "date_field": "DtAtualizacao"}])
    first = run_cli("--once", "--config", str(path))
    assert first.code == 0, first.err
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest and not list(tmp_path.glob("shop.db-*"))
    second = run_cli("--once", "--config", str(path))
    assert second.code == 0 and "the source is still at version sha256:" in second.err + second.out
    sqlite_put(db, V2)
    third = run_cli("--once", "--config", str(path))
    assert third.code == 0, third.err
    assert "I     27  U    138  D      0" in third.out


def test_a_wal_database_is_read_with_its_log(tmp_path: Path):
    db = tmp_path / "shop.db"
    writer = sqlite3.connect(db)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    writer.execute("INSERT INTO t VALUES (1, 'a')")
    writer.commit()
    try:  # the writer stays open: its rows are in shop.db-wal, not yet in shop.db
        cfg = config(tmp_path, [{"name": "t", "pk": "id"}])
        first = run_once(cfg)
        writer.execute("UPDATE t SET v = 'b'")
        writer.commit()
        second = run_once(cfg)
    finally:
        writer.close()
    assert first.tables[0].rows == 1 and second.source_version != first.source_version
    assert second.tables[0].counts == {"I": 0, "U": 1, "D": 0}


def test_a_missing_table_fails_alone_and_a_query_is_a_table(tmp_path: Path):
    sqlite_put(tmp_path / "shop.db", V1)
    tables = [{"name": "nope", "pk": "id"},
              {"name": "points", "pk": "flEmail", "query": 'SELECT "flEmail", sum("qtdePontos") AS total, '
                                                            'count(*) AS n FROM clientes GROUP BY 1;'}]
    path = write_config(tmp_path, source={"type": "sqlite", "path": "shop.db"}, tables=tables)
    result = run_cli("--once", "--config", str(path))
    assert result.code == 1
    assert f'Table "nope": table nope in SQLite database {tmp_path / "shop.db"} does not exist' in result.out
    totals = pq.read_table(full_load(tmp_path, "points")).to_pylist()
    assert sum(r["n"] for r in totals) == 3837 and lake_types(full_load(tmp_path, "points"))["total"] == "BIGINT"


def test_a_locked_or_broken_file_fails_the_cycle_in_one_line(tmp_path: Path):
    db = tmp_path / "shop.db"
    sqlite_put(db, V1)
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(SourceError, match=r"^Reading the SQLite database .*shop\.db failed \(database is "
                                              r"locked\) — if another program holds a write lock"):
            SqliteSource(db, timeout=0.1).fetch([TableConfig("clientes", (KEY,))], tmp_path, last_version=None)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(SourceError, match=r"failed \(file is not a database\)"):
        SqliteSource(db).fetch([TableConfig("clientes", (KEY,))], tmp_path, last_version=None)
    assert not list(tmp_path.glob("*.parquet*"))
    with pytest.raises(SourceError, match=r'does not exist — fix "source.path"'):
        SqliteSource(tmp_path / "gone.db").fetch([TableConfig("clientes", (KEY,))], tmp_path, last_version=None)


def test_a_missing_database_file_fails_the_cycle_with_one_line_not_one_per_table(tmp_path: Path):
    tables = [{"name": name, "pk": "id"} for name in ("clientes", "produtos", "transacoes", "transacao_produto")]
    path = write_config(tmp_path, source={"type": "sqlite", "path": "missing.db"}, tables=tables)
    result = run_cli("--once", "--config", str(path))
    assert result.code == 1
    message = f'SQLite database {tmp_path / "missing.db"} does not exist — fix "source.path" in the config'
    assert result.out.count(message) == 1 and result.err.count(message) <= 1
    assert result.out.count("FAILED: the same error as clientes") == 3


def test_text_that_is_not_utf8_names_the_column_and_the_way_out(tmp_path: Path):
    with sqlite3.connect(tmp_path / "shop.db") as con:
        con.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT)")
        con.execute("INSERT INTO people VALUES (1, 'ana'), (2, CAST(x'4a6fe36f' AS TEXT))")  # Latin-1 "João"
    report = run_once(config(tmp_path, [{"name": "people", "pk": "id"}]))
    assert report.tables[0].error == (
        f'Table "people": table people in SQLite database {tmp_path / "shop.db"}: column "name" holds text that is '
        'not valid UTF-8 — fix the data in the database, or capture the column as bytes with a "query" that '
        'selects CAST("name" AS BLOB)')
    query = "SELECT id, CAST(name AS BLOB) AS name FROM people; -- the bytes as they are"
    assert run_once(config(tmp_path, [{"name": "people", "pk": "id", "query": query}])).ok
