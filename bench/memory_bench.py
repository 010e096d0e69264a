"""Peak memory of a large change set under `engine.memory_limit`: `cdc_core.engines.duckdb.diff` writing straight to Parquet vs a
hand-written DuckDB `COPY` of the same full outer join.

    .venv/bin/python bench/memory_bench.py --rows 4000000 --memory-limit 256MB [--workdir bench/.work]

Data: `previous` has N clientes-shaped rows (see diff_bench.py) and `current` has every row updated, so the change
set has N rows. Each method runs in a fresh process with DuckDB's memory_limit and a spill folder; peak RSS is the
child's VmHWM (imports included; the RSS right after imports is printed too). Goal (issue "Hardening"): the
cycle's diff peaks at no more than memory_limit + 200 MB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from diff_bench import rss_mib


def prepare(rows: int, workdir: Path) -> Path:
    import duckdb

    folder = workdir / f"all-updated-{rows}"
    if (folder / "done").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(config={"memory_limit": "2GB", "temp_directory": str(workdir / "gen-tmp")})
    base = (f"SELECT md5('c' || i) AS idCliente, (hash(i) % 2)::INTEGER AS flEmail, (hash(i) % 50000)::INTEGER "
            f"AS qtdePontos, TIMESTAMPTZ '2025-01-01' + to_milliseconds((hash(i * 7) % 1e10)::BIGINT) AS "
            f"DtAtualizacao FROM range({rows}) t(i)")
    con.execute(f"COPY ({base}) TO '{folder / 'previous.parquet'}' (FORMAT parquet)")
    con.execute(f"COPY (SELECT idCliente, flEmail, qtdePontos + 1 AS qtdePontos, DtAtualizacao + INTERVAL 1 DAY "
                f"AS DtAtualizacao FROM ({base})) TO '{folder / 'current.parquet'}' (FORMAT parquet)")
    (folder / "done").write_text("ok")
    return folder


def child(method: str, folder: Path, limit: str) -> None:
    import duckdb  # noqa: F401  (imports before the baseline RSS)

    from cdc_core.config import EngineConfig
    from cdc_core.engines.duckdb.connection import connect
    from cdc_core.engines.duckdb.diff import diff

    con = connect(EngineConfig(memory_limit=limit), spill_dir=folder / "spill")
    after_imports = rss_mib("VmRSS")
    out = folder / f"out-{method}.parquet"
    start = time.perf_counter()
    if method == "cdc":
        changes = diff(folder / "previous.parquet", folder / "current.parquet", "idCliente", con=con, output=out,
                       constants={"_cdc_run_id": "'20250101_000000'"})
        count = changes.total
    else:
        con.execute(f"""COPY (SELECT CASE WHEN p.idCliente IS NULL THEN 'I' WHEN c.idCliente IS NULL THEN 'D'
                        ELSE 'U' END AS op, COALESCE(c.idCliente, p.idCliente) AS idCliente, c.flEmail,
                        c.qtdePontos, c.DtAtualizacao
                        FROM read_parquet('{folder / 'previous.parquet'}') p
                        FULL OUTER JOIN read_parquet('{folder / 'current.parquet'}') c ON p.idCliente = c.idCliente
                        WHERE p.idCliente IS NULL OR c.idCliente IS NULL OR p.flEmail IS DISTINCT FROM c.flEmail
                        OR p.qtdePontos IS DISTINCT FROM c.qtdePontos OR p.DtAtualizacao IS DISTINCT FROM
                        c.DtAtualizacao ORDER BY idCliente) TO '{out}' (FORMAT parquet)""")
        count = con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]
    print(json.dumps({"method": method, "seconds": time.perf_counter() - start, "rows": count,
                      "peak_rss_mib": rss_mib("VmHWM"), "rss_after_imports_mib": after_imports}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4_000_000)
    parser.add_argument("--memory-limit", default="256MB")
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / ".work")
    parser.add_argument("--_child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        child(args._child[0], Path(args._child[1]), args.memory_limit)
        return
    folder = prepare(args.rows, args.workdir)
    print("| method | change rows | memory_limit | seconds | peak RSS MiB | RSS after imports MiB |")
    print("|---|---:|---|---:|---:|---:|")
    for method in ("cdc", "duckdb"):
        out = subprocess.run([sys.executable, __file__, "--memory-limit", args.memory_limit, "--_child", method,
                              str(folder)], capture_output=True, text=True, check=True, cwd=ROOT)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {method} | {r['rows']:,} | {args.memory_limit} | {r['seconds']:.1f} | {r['peak_rss_mib']:.0f} | "
              f"{r['rss_after_imports_mib']:.0f} |")


if __name__ == "__main__":
    main()
