"""Benchmark ways to stream a PostgreSQL table into a Parquet file, batch by batch (the postgres source's job).

    .venv/bin/python bench/postgres_bench.py --rows 1000000 --repeat 3 [--dsn postgresql://…] [--out FILE.json]

Without `--dsn`, a throwaway server is started (tests/pg_server.py: initdb + pg_ctl, as the `postgres` user when
run as root) and removed at the end. The table is `clientes`-shaped plus a `numeric(12,2)` and a `timestamptz`:
a text key, five 0/1 flags, points, two timestamps, a decimal, a text column.

Methods, each in a fresh interpreter, timed from connect to the closed Parquet file (imports excluded):
- `adbc`: adbc_driver_postgresql, `fetch_record_batch()` (COPY BINARY decoded to Arrow in C++), ParquetWriter;
- `psycopg-copy`: psycopg 3 `COPY (SELECT …) TO STDOUT (FORMAT BINARY)` with typed rows, 64k-row Arrow batches;
- `psycopg-cursor`: psycopg 3 server-side (named) cursor, `fetchmany(65536)`, 64k-row Arrow batches.
Peak RSS is the child's VmHWM (imports included; the RSS after imports is reported beside it).
Each child reports the row count it wrote; the parent stops if one differs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
METHODS = ("adbc", "psycopg-copy", "psycopg-cursor")
QUERY = "SELECT * FROM bench_clientes"
BATCH = 65536


def _rss(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    return 0


def create_table(dsn: str, rows: int) -> None:
    """(Re)create `bench_clientes` with `rows` deterministic rows, unless it already has that many."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as con:
        found = con.execute("SELECT to_regclass('bench_clientes') IS NOT NULL").fetchone()[0]
        if found and con.execute("SELECT count(*) FROM bench_clientes").fetchone()[0] == rows:
            return
        con.execute("DROP TABLE IF EXISTS bench_clientes")
        con.execute(f"""CREATE TABLE bench_clientes AS SELECT
            md5(i::text)::uuid::text AS "idCliente", (i % 2) AS "flEmail", (i % 3 = 0)::int AS "flTwitch",
            (i % 5 = 0)::int AS "flYouTube", (i % 7 = 0)::int AS "flBlueSky", (i % 11 = 0)::int AS "flInstagram",
            (i * 37 % 100000)::bigint AS "qtdePontos",
            timestamp '2024-02-01' + (i % 86400) * interval '1 second' AS "DtCriacao",
            timestamptz '2025-01-01 00:00:00+00' + (i % 100000) * interval '1 millisecond' AS "DtAtualizacao",
            ((i * 13 % 1000000) / 100.0)::numeric(12,2) AS "saldo", 'cliente ' || i AS "nome"
            FROM generate_series(1, {rows}) AS i""")
        con.execute("ANALYZE bench_clientes")


def run_adbc(dsn: str, out: Path) -> int:
    import adbc_driver_postgresql.dbapi as adbc
    import pyarrow.parquet as pq

    rows = 0
    with adbc.connect(dsn) as con, con.cursor() as cur:
        cur.execute(QUERY)
        reader = cur.fetch_record_batch()
        with pq.ParquetWriter(out, reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch)
                rows += batch.num_rows
    return rows


def _writer_loop(rows_iter, names: list[str], out: Path) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer, done = None, 0
    chunk: list[tuple] = []

    def flush() -> None:
        nonlocal writer, done
        table = pa.Table.from_arrays([pa.array(col) for col in zip(*chunk, strict=True)], names=names)
        if writer is None:
            writer = pq.ParquetWriter(out, table.schema)
        writer.write_table(table)
        done += len(chunk)
        chunk.clear()

    for row in rows_iter:
        chunk.append(row)
        if len(chunk) == BATCH:
            flush()
    if chunk:
        flush()
    if writer is not None:
        writer.close()
    return done


def run_psycopg_copy(dsn: str, out: Path) -> int:
    import psycopg

    with psycopg.connect(dsn) as con, con.cursor() as cur:
        cur.execute(f"{QUERY} LIMIT 0")
        names = [d.name for d in cur.description]
        types = [d.type_code for d in cur.description]
        with cur.copy(f"COPY ({QUERY}) TO STDOUT (FORMAT BINARY)") as copy:
            copy.set_types(types)
            return _writer_loop(copy.rows(), names, out)


def run_psycopg_cursor(dsn: str, out: Path) -> int:
    import psycopg

    with psycopg.connect(dsn) as con, con.cursor(name="bench") as cur:
        cur.itersize = BATCH
        cur.execute(QUERY)
        first = cur.fetchmany(BATCH)
        names = [d.name for d in cur.description]

        def rows():
            yield from first
            while batch := cur.fetchmany(BATCH):
                yield from batch

        return _writer_loop(rows(), names, out)


RUNNERS = {"adbc": run_adbc, "psycopg-copy": run_psycopg_copy, "psycopg-cursor": run_psycopg_cursor}


def child(method: str, dsn: str, out: Path) -> None:
    """One timed run in this (fresh) process; prints a JSON line."""
    import adbc_driver_postgresql.dbapi  # noqa: F401 - imports are not timed
    import psycopg  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    after_imports = _rss("VmRSS")
    start = time.perf_counter()
    rows = RUNNERS[method](dsn, out)
    seconds = time.perf_counter() - start
    print(json.dumps({"method": method, "rows": rows, "seconds": seconds, "peak_rss": _rss("VmHWM"),
                      "rss_after_imports": after_imports, "bytes": out.stat().st_size}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--dsn")
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / ".work")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--_run", nargs=2, metavar=("METHOD", "DSN"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args._run:
        child(args._run[0], args._run[1], args.workdir / f"pg-{args._run[0]}.parquet")
        return
    server = None
    dsn = args.dsn
    if dsn is None:
        sys.path.insert(0, str(ROOT / "tests"))
        from pg_server import PostgresServer

        server = PostgresServer.find()
        if server is None:
            sys.exit("No PostgreSQL server binaries found (initdb, pg_ctl) — pass --dsn")
        server.init()
        server.start()
        dsn = server.dsn()
    try:
        create_table(dsn, args.rows)
        results = []
        for method in args.methods.split(","):
            runs = []
            for _ in range(args.repeat):
                proc = subprocess.run([sys.executable, __file__, "--workdir", str(args.workdir), "--_run", method,
                                       dsn], check=True, capture_output=True, text=True)
                runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
                if runs[-1]["rows"] != args.rows:
                    sys.exit(f"{method} wrote {runs[-1]['rows']} rows, not {args.rows}")
            results.append({"method": method, "rows": args.rows, "runs": len(runs),
                            "median_seconds": round(statistics.median(r["seconds"] for r in runs), 3),
                            "rows_per_second": round(args.rows / statistics.median(r["seconds"] for r in runs)),
                            "peak_rss_mb": round(max(r["peak_rss"] for r in runs) / 2**20),
                            "rss_after_imports_mb": round(max(r["rss_after_imports"] for r in runs) / 2**20),
                            "parquet_mb": round(runs[-1]["bytes"] / 2**20, 1)})
            print(json.dumps(results[-1]), flush=True)
    finally:
        if server is not None:
            server.remove()
    print("\n| method | rows | median s | rows/s | peak RSS MB | RSS after imports MB |\n|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['method']} | {r['rows']:,} | {r['median_seconds']} | {r['rows_per_second']:,} | "
              f"{r['peak_rss_mb']} | {r['rss_after_imports_mb']} |")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
