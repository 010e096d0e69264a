"""The postgres source against a real PostgreSQL 15 server: types, real SQL changes, one snapshot, and faults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from cdc_core import run_once
from cdc_core.config import parse_config

from .clientes_db import KEY, V1, pg_create
from .conftest import ROOT, run_cli, write_config

GATE = """CREATE FUNCTION gate(i bigint) RETURNS boolean LANGUAGE plpgsql AS $$
          BEGIN IF i = {at} THEN PERFORM pg_advisory_xact_lock_shared(42); END IF; RETURN true; END $$"""


def config(folder: Path, dsn: str | None, tables: list[dict], **extra):
    source = {"type": "postgres", **({"dsn": dsn} if dsn else {})}
    raw = {"source": source, "lake": "lake", "data_dir": "data", "tables": tables, **extra}
    return parse_config(raw, base_dir=folder)


def full_load(folder: Path, table: str) -> Path:
    return folder / "lake" / "full-load" / table / f"{table}.parquet"


def cdc_rows(folder: Path, table: str) -> list[dict]:
    (path,) = sorted((folder / "lake" / "cdc" / table).glob("*.parquet"))[-1:]
    return pq.read_table(path).drop_columns(["_cdc_run_id", "_cdc_captured_at"]).to_pylist()


def test_database_types_reach_the_lake_as_the_lakes_types(pg, tmp_path: Path):
    pg.sql("CREATE TYPE mood AS ENUM ('ok', 'sad')",
           """CREATE TABLE everything (id integer PRIMARY KEY, small smallint, big bigint, price numeric(10,2),
              exact numeric, wide numeric(40,0), ratio real, score double precision, active boolean, name text,
              code varchar(5), fixed char(3), born date, seen timestamp(3), paid timestamptz, opens time,
              length interval, doc json, docb jsonb, uid uuid, tags text[], raw bytea, cost money, addr inet,
              feeling mood)""",
           """INSERT INTO everything VALUES (1, -2, 9007199254740993, 12.50, 0.1000000000000000000001,
              1234567890123456789012345678901234567890, 1.5, 0.1, true, 'José', 'ab', 'x', '2024-02-29',
              '2024-02-01 10:00:00.123', '2024-02-01 10:00:00-03', '08:30', '1 day 2 hours', '{"a": [1, 2]}',
              '{"b": 1}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{a,"b c"}', '\\x00ff', 12.34, '10.0.0.1',
              'sad')""",
           "INSERT INTO everything (id) VALUES (2)")
    report = run_once(config(tmp_path, pg.dsn, [{"name": "everything", "pk": "id"}]))
    assert report.ok, report.tables[0].error
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    path = str(full_load(tmp_path, "everything"))
    types = {name: kind for name, kind, *_ in con.execute(f"DESCRIBE SELECT * FROM '{path}'").fetchall()}
    assert types == {
        "id": "VARCHAR", "small": "BIGINT", "big": "BIGINT", "price": "DECIMAL(10,2)", "exact": "VARCHAR",
        "wide": "VARCHAR", "ratio": "DOUBLE", "score": "DOUBLE", "active": "BOOLEAN", "name": "VARCHAR",
        "code": "VARCHAR", "fixed": "VARCHAR", "born": "DATE", "seen": "TIMESTAMP WITH TIME ZONE",
        "paid": "TIMESTAMP WITH TIME ZONE", "opens": "VARCHAR", "length": "VARCHAR", "doc": "VARCHAR",
        "docb": "VARCHAR", "uid": "VARCHAR", "tags": "VARCHAR", "raw": "BLOB", "cost": "VARCHAR",
        "addr": "VARCHAR", "feeling": "VARCHAR"}
    row = con.execute(f"SELECT * FROM '{path}' WHERE id = '1'").fetchone()
    got = dict(zip(types, row, strict=True))
    assert got["big"] == 9007199254740993 and str(got["price"]) == "12.50"
    assert got["exact"] == "0.1000000000000000000001"  # numeric without precision: its exact text
    assert got["wide"] == "1234567890123456789012345678901234567890"
    assert got["score"] == 0.1 and got["name"] == "José" and got["fixed"] == "x  "
    assert str(got["born"]) == "2024-02-29"
    assert got["seen"].isoformat() == "2024-02-01T10:00:00.123000+00:00"  # a timestamp without zone: as UTC
    assert got["paid"].isoformat() == "2024-02-01T13:00:00+00:00"  # timestamptz: the instant, in UTC
    assert (got["opens"], got["length"], got["doc"], got["docb"]) == ("08:30:00", "1 day 02:00:00",
                                                                      '{"a": [1, 2]}', '{"b": 1}')
    assert (got["uid"], got["tags"], got["raw"], got["feeling"]) == (
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", '{a,"b c"}', b"\x00\xff", "sad")
    empty = con.execute(f"SELECT * FROM '{path}' WHERE id = '2'").fetchone()
    assert empty[1:] == (None,) * (len(types) - 1)


def test_sql_updates_deletes_and_inserts_are_captured_exactly_and_nothing_else(pg, tmp_path: Path):
    pg_create(pg, V1)
    cfg = config(tmp_path, pg.dsn, [{"name": "clientes", "pk": KEY, "date_field": "DtAtualizacao"}])
    first = run_once(cfg)
    assert first.tables[0].status == "full_load" and first.tables[0].rows == 3837
    assert first.source_version is None  # a database has no version to compare: every cycle reads
    keys = [k for (k,) in pg.sql('SELECT "idCliente" FROM clientes ORDER BY 1 LIMIT 5')]
    pg.sql(f"""UPDATE clientes SET "qtdePontos" = "qtdePontos" + 100, "DtAtualizacao" = '2025-09-20 12:00:00.500'
               WHERE "idCliente" IN ('{keys[0]}', '{keys[1]}', '{keys[2]}')""",
           f"""DELETE FROM clientes WHERE "idCliente" IN ('{keys[3]}', '{keys[4]}')""",
           """INSERT INTO clientes VALUES ('new-client', 1, 0, 0, 0, 1, 7, '2025-09-20 12:00:00',
              '2025-09-20 12:00:00')""")
    second = run_once(cfg)
    assert second.tables[0].status == "changes"
    assert second.tables[0].counts == {"I": 1, "U": 3, "D": 2}
    rows = {(r["op"], r[KEY]): r for r in cdc_rows(tmp_path, "clientes")}
    assert set(rows) == {("U", k) for k in keys[:3]} | {("D", k) for k in keys[3:5]} | {("I", "new-client")}
    assert all(rows["U", k]["DtAtualizacao"].isoformat() == "2025-09-20T12:00:00.500000+00:00" for k in keys[:3])
    third = run_once(cfg)
    assert third.tables[0].status == "unchanged" and third.tables[0].rows == 3836


def test_all_tables_of_a_cycle_are_read_in_one_snapshot(pg, pg_server, tmp_path: Path):
    """A change committed while the cycle runs is in none of its tables, even those read after it."""
    pg.sql("CREATE TABLE a (id int PRIMARY KEY)", "INSERT INTO a VALUES (1), (2), (3)",
           "CREATE TABLE b (id int PRIMARY KEY, v text)", "INSERT INTO b VALUES (1, 'before')", GATE.format(at=2))
    holder = _hold_gate(pg)
    tables = [{"name": "a", "pk": "id", "query": "SELECT id FROM a WHERE gate(id)"}, {"name": "b", "pk": "id"}]
    result = {}
    cycle = threading.Thread(target=lambda: result.update(report=run_once(config(tmp_path, pg.dsn, tables))))
    cycle.start()
    try:
        _wait_for_gate(pg_server)  # the cycle's snapshot is taken: it is reading table a
        pg.sql("UPDATE b SET v = 'after'", "INSERT INTO b VALUES (2, 'new')")
    finally:
        holder.close()
    cycle.join(60)
    assert result["report"].ok
    assert pq.read_table(full_load(tmp_path, "b")).to_pylist() == [{"id": "1", "v": "before"}]
    assert run_once(config(tmp_path, pg.dsn, tables)).tables[1].counts == {"I": 1, "U": 1, "D": 0}


def test_a_connection_lost_mid_read_fails_the_cycle_and_the_next_one_recovers(pg, pg_server, tmp_path: Path):
    pg.sql("CREATE TABLE small (id int PRIMARY KEY, v text)", "INSERT INTO small VALUES (1, 'a'), (2, 'b')",
           "CREATE TABLE big AS SELECT i AS id, md5(i::text) AS v FROM generate_series(1, 100000) i",
           "ALTER TABLE big ADD PRIMARY KEY (id)", GATE.format(at=60000))
    tables = [{"name": "small", "pk": "id"}, {"name": "big", "pk": "id", "query": "SELECT * FROM big WHERE gate(id)"}]
    path = write_config(tmp_path, source={"type": "postgres", "dsn": pg.dsn}, tables=tables)
    assert run_cli("--once", "--config", str(path)).code == 0
    pg.sql("UPDATE small SET v = 'changed' WHERE id = 1", "DELETE FROM big WHERE id <= 10")
    holder = _hold_gate(pg)
    cli = subprocess.Popen([sys.executable, "-m", "cdc_core", "--once", "--config", str(path)], cwd=ROOT,
                           env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_gate(pg_server)  # `small` is read, `big` has streamed 59,999 rows
        pg_server.stop("fast")  # terminates every session, then shuts down
        out, err = cli.communicate(timeout=120)
    finally:
        holder.close()
        cli.kill()
        pg_server.start_if_stopped()
    assert cli.returncode == 1 and out.count("FAILED") == 2  # both tables: they share one snapshot
    lines = [line for line in out.splitlines() if "PostgreSQL" in line]
    assert lines and all("postgres@127.0.0.1" in line or "cdc@127.0.0.1" in line for line in lines), out
    assert (out + err).count("connection was lost or the server stopped") == 1 and "Traceback" not in err
    assert not (tmp_path / "lake" / "cdc").exists()  # nothing of the broken snapshot was captured
    again = run_cli("--once", "--config", str(path))
    assert again.code == 0, again.err
    assert len(cdc_rows(tmp_path, "small")) == 1 and len(cdc_rows(tmp_path, "big")) == 10


def test_a_wrong_password_is_one_line_that_never_shows_the_password(pg, tmp_path: Path):
    pg_create(pg, V1)
    dsn = pg.dsn.replace(pg.password, "Wr0ng-Secret-42")
    path = write_config(tmp_path, source={"type": "postgres", "dsn": dsn}, tables=[{"name": "clientes", "pk": KEY}])
    result = run_cli("--once", "--config", str(path))
    assert result.code == 1
    logged = (tmp_path / "data" / "logs" / "cdc.log").read_text()
    assert "Wr0ng-Secret-42" not in result.out + result.err + logged
    assert f'PostgreSQL at cdc@127.0.0.1:{pg.server.port}/{pg.name} rejected the login of user "cdc"' in result.out
    assert "Traceback" not in result.err


def test_an_unreachable_server_is_one_line(tmp_path: Path):
    path = write_config(tmp_path, source={"type": "postgres", "dsn": "postgresql://cdc:pw@127.0.0.1:9/shop"},
                        tables=[{"name": "clientes", "pk": KEY}])
    result = run_cli("--once", "--config", str(path))
    assert result.code == 1
    assert "Cannot connect to PostgreSQL at cdc@127.0.0.1:9/shop" in result.out and "Traceback" not in result.err


def test_a_missing_table_and_a_denied_table_fail_alone(pg, tmp_path: Path):
    reader = f"reader_{pg.name}"[:60]
    pg.server.sql(f"CREATE ROLE {reader} LOGIN PASSWORD 'reader-pw'")
    pg_create(pg, V1)
    pg.sql("CREATE TABLE secret (id int PRIMARY KEY)", f"GRANT SELECT ON clientes TO {reader}")
    dsn = pg.server.dsn(reader, "reader-pw", pg.name)
    tables = [{"name": "secret", "pk": "id"}, {"name": "nope", "pk": "id"}, {"name": "clientes", "pk": KEY}]
    path = write_config(tmp_path, source={"type": "postgres", "dsn": dsn}, tables=tables)
    result = run_cli("--once", "--config", str(path))
    assert result.code == 1
    assert (f'Table "secret": table public.secret in PostgreSQL at {reader}@127.0.0.1:{pg.server.port}/{pg.name} '
            f'cannot be read: permission denied — GRANT SELECT on it to user "{reader}"') in result.out
    assert 'Table "nope": table public.nope in PostgreSQL' in result.out and "does not exist" in result.out
    assert pq.read_metadata(full_load(tmp_path, "clientes")).num_rows == 3837  # read after two failures


def test_a_query_is_captured_like_a_table(pg, tmp_path: Path):
    pg.sql("CREATE SCHEMA shop", "CREATE TABLE shop.orders (id int PRIMARY KEY, client text, total numeric(8,2))",
           "INSERT INTO shop.orders VALUES (1, 'ana', 10.00), (2, 'ana', 5.50), (3, 'bia', 1.25)")
    tables = [{"name": "totals", "pk": "client",
               "query": "SELECT client, sum(total)::numeric(12,2) AS total, count(*) AS n FROM shop.orders "
                        "GROUP BY client;"},
              {"name": "orders", "pk": "id", "schema": "shop"}]
    cfg = config(tmp_path, pg.dsn, tables)
    assert run_once(cfg).ok
    pg.sql("UPDATE shop.orders SET total = 6.50 WHERE id = 2")
    second = run_once(cfg)
    assert [t.counts for t in second.tables] == [{"I": 0, "U": 1, "D": 0}, {"I": 0, "U": 1, "D": 0}]
    assert [(r["client"], str(r["total"]), r["n"]) for r in cdc_rows(tmp_path, "totals")] == [("ana", "16.50", 2)]


def test_a_value_a_decimal_cannot_hold_asks_for_a_pin_and_the_pin_works(pg, tmp_path: Path):
    pg.sql("CREATE TABLE prices (id int PRIMARY KEY, price numeric(8,2))",
           "INSERT INTO prices VALUES (1, 1.50), (2, 'NaN')")
    report = run_once(config(tmp_path, pg.dsn, [{"name": "prices", "pk": "id"}]))
    assert report.tables[0].status == "failed"
    assert 'column "price"' in report.tables[0].error and '"VARCHAR"' in report.tables[0].error
    pinned = run_once(config(tmp_path, pg.dsn, [{"name": "prices", "pk": "id", "columns": {"price": "VARCHAR"}}]))
    assert pinned.ok
    assert pq.read_table(full_load(tmp_path, "prices")).sort_by("id").column("price").to_pylist() == ["1.50", "NaN"]


def test_the_connection_may_come_from_the_pg_variables_in_dotenv(pg, tmp_path: Path):
    pg_create(pg, V1)
    (tmp_path / ".env").write_text(f"PGHOST=127.0.0.1\nPGPORT={pg.server.port}\nPGUSER={pg.user}\n"
                                   f"PGPASSWORD={pg.password}\nPGDATABASE={pg.name}\n")
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"source": {"type": "postgres"}, "lake": "lake", "data_dir": "data",
                                "tables": [{"name": "clientes", "pk": KEY}]}))
    result = run_cli("--once", "--config", str(path))
    assert result.code == 0, result.err
    assert f"postgres cdc@127.0.0.1:{pg.server.port}/{pg.name}" in result.out
    assert pg.password not in result.out + result.err


def _hold_gate(pg):
    """A session holding the advisory lock that `gate()` waits for (advisory locks are per database)."""
    import adbc_driver_postgresql.dbapi as adbc

    con = adbc.connect(pg.server.dsn(db=pg.name), autocommit=True)
    with con.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(42)")
        cur.fetchall()
    return con


def _wait_for_gate(server, timeout: float = 60) -> None:
    """Until some session waits for the advisory lock (a capture reached the gate)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.sql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")[0][0]:
            return
        time.sleep(0.05)
    pytest.fail("the capture never reached the gate")


HIDE_THE_SERVER = ("import sys, pytest, tests.pg_server as pg_server; pg_server._bindir = lambda: None; "
                   "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', '-n', '0', sys.argv[1]]))")


@pytest.mark.parametrize(("opt_out", "code", "outcome"), [(None, 1, "1 error"), ("1", 0, "1 skipped")])
def test_without_the_server_binaries_the_postgres_tests_fail_unless_explicitly_skipped(opt_out: str | None,
                                                                                         code: int, outcome: str):
    env = {name: value for name, value in os.environ.items() if name != "CDC_TESTS_NO_POSTGRES"}
    if opt_out:
        env["CDC_TESTS_NO_POSTGRES"] = opt_out
    test = "tests/test_source_postgres.py::test_a_query_is_captured_like_a_table"
    proc = subprocess.run([sys.executable, "-c", HIDE_THE_SERVER, test], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert outcome in proc.stdout.splitlines()[-1]
    if not opt_out:
        assert "PostgreSQL server binaries (initdb, pg_ctl) are not installed (not on PATH nor in BINDIRS of " \
               "tests/pg_server.py) — install them (Debian/Ubuntu: apt-get install postgresql), or set " \
               "CDC_TESTS_NO_POSTGRES=1 to skip the PostgreSQL tests\n" in proc.stdout  # one line


def test_the_newest_installed_server_is_found_whatever_its_version_and_packaging(tmp_path: Path, monkeypatch):
    from . import pg_server

    for folder, programs in [("usr/lib/postgresql/9.6/bin", ("initdb", "pg_ctl")),
                             ("usr/lib/postgresql/16/bin", ("initdb", "pg_ctl")),
                             ("usr/lib/postgresql/17/bin", ("psql",)),  # only the client of 17
                             ("usr/pgsql-15/bin", ("initdb", "pg_ctl"))]:
        (tmp_path / folder).mkdir(parents=True)
        for program in programs:
            (tmp_path / folder / program).touch()
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    monkeypatch.setattr(pg_server, "BINDIRS", (f"{tmp_path}/usr/lib/postgresql/*/bin", f"{tmp_path}/usr/pgsql-*/bin"))
    assert pg_server._bindir() == tmp_path / "usr/lib/postgresql/16/bin"
    (tmp_path / "usr/lib/postgresql/16/bin/initdb").unlink()
    assert pg_server._bindir() == tmp_path / "usr/pgsql-15/bin"


def _lock(pg, table: str):
    """A second session holding `LOCK TABLE … IN ACCESS EXCLUSIVE MODE` in an open transaction."""
    import adbc_driver_postgresql.dbapi as adbc

    con = adbc.connect(pg.server.dsn(db=pg.name), autocommit=True)
    cur = con.cursor()
    cur.execute("BEGIN")
    cur.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
    return con, cur


def test_a_table_locked_by_another_session_fails_in_one_line_after_the_lock_timeout(pg, tmp_path: Path):
    pg_create(pg, V1)
    pg.sql("CREATE TABLE other (id int PRIMARY KEY)", "INSERT INTO other VALUES (1)")
    source = {"type": "postgres", "dsn": pg.dsn, "lock_timeout": 1}
    path = write_config(tmp_path, source=source, tables=[{"name": "clientes", "pk": KEY}, {"name": "other",
                                                                                           "pk": "id"}])
    con, cur = _lock(pg, "clientes")
    try:
        started = time.monotonic()
        result = run_cli("--once", "--config", str(path), timeout=60)  # the deadline: far above the 1 s timeout
        took = time.monotonic() - started
    finally:
        cur.execute("ROLLBACK")
        con.close()
    assert result.code == 1 and took < 30, result.err
    assert (f'Table "clientes": table public.clientes in PostgreSQL at cdc@127.0.0.1:{pg.server.port}/{pg.name} '
            'is locked by another session for longer than 1 s ("source.lock_timeout")') in result.out
    assert "Traceback" not in result.err
    assert (tmp_path / "lake" / "full-load" / "other" / "other.parquet").is_file()  # the other table went on


def test_a_read_longer_than_the_statement_timeout_fails_in_one_line(pg, tmp_path: Path):
    tables = [{"name": "slow", "pk": "id", "query": "SELECT 1 AS id, pg_sleep(5) IS NULL AS slept -- a nap\n;"}]
    report = run_once(config(tmp_path, pg.dsn, tables))
    assert report.ok  # the trailing comment and ";" are no syntax error
    cfg = parse_config({"source": {"type": "postgres", "dsn": pg.dsn, "statement_timeout": 1}, "lake": "lake",
                        "data_dir": "data", "tables": tables}, base_dir=tmp_path)
    started = time.monotonic()
    failed = run_once(cfg)
    assert time.monotonic() - started < 4.5
    assert 'took longer than 1 s to read ("source.statement_timeout")' in failed.tables[0].error


@pytest.mark.parametrize(("dsn", "shown", "message"), [
    ("postgresql://cdc:Sek@r1t@db.example.com/shop", "postgresql://cdc:***@db.example.com/shop",
     'is ambiguous: it holds more than one "@" before the host — write an "@" in the user name or password as %40'),
    ("host=db.example.com password=abc Sekr1t dbname=shop", "host=db.example.com password=*** dbname=shop",
     ("is ambiguous: it must be key=value pairs separated by blanks — put a value that holds a blank or a quote in "
     "single quotes (like 'a b'), or use a postgresql:// URI")),
    ("postgresql://cdc@[::1/shop", "postgresql://cdc@[::1/shop", "cannot be read (Invalid IPv6 URL)"),
])
def test_a_dsn_that_cannot_be_read_unambiguously_is_refused_masked(tmp_path: Path, dsn: str, shown: str,
                                                                   message: str):
    path = write_config(tmp_path, source={"type": "postgres", "dsn": dsn}, tables=[{"name": "clientes", "pk": KEY}])
    result = run_cli("--once", "--config", str(path))
    assert result.code == 2
    assert result.err.startswith(f'Error: Config key "source.dsn" ({shown}) {message}')
    assert "Sekr1t" not in result.err and "r1t" not in result.err and len(result.err.splitlines()) == 1
