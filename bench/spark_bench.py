"""Benchmark the Spark engine (local[1], local[2]) against the DuckDB engine: the diff alone and a whole cycle.

    .venv/bin/python bench/spark_bench.py --rows 1000000 --repeat 3 --out bench/results-spark-1M.json
    .venv/bin/python bench/spark_bench.py --rows 10000000 --repeat 1 --out bench/results-spark-10M.json

Data: `diff_bench.prepare`'s `clientes`-shaped pair as CSV (1% updated, 0.5% deleted, 1% new; cached in
`--workdir`). Every run is a fresh interpreter (`--_run`, internal):

- `diff`: `engine.diff` of the two snapshots (typed once by the DuckDB engine, untimed), writing the change rows
  to Parquet. For Spark the session is opened before the timer starts; its start-up is reported on its own.
- `cycle`: a whole capture through `run_once` (directory source, local lake), timed from the call to its return:
  fetch, typing the CSV into a snapshot, diff, commit and full load, session start-up included. The lake's first
  capture (`previous.csv`, DuckDB engine) is made untimed in the same fresh folder first.

The parent checks every run's I/U/D counts against the generator's and reports medians.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
ENGINES = {"duckdb": None, "spark-local1": "local[1]", "spark-local2": "local[2]"}


def engine_config(name: str) -> dict:
    master = ENGINES[name]
    return {"type": "spark", "master": master, "conf": {"spark.driver.memory": "4g"}} if master else {}


def run_diff(a: argparse.Namespace) -> dict:
    sys.path.insert(0, str(ROOT))
    from cdc_core.config import EngineConfig, TableConfig
    from cdc_core.engines.duckdb import DuckDBEngine

    table = TableConfig("clientes", ("idCliente",), date_field="DtAtualizacao", sep=";")
    folder = Path(a.folder)
    snaps = []
    typer = DuckDBEngine()
    for name in ("previous", "current"):
        snap = folder / f"{name}.snapshot.parquet"
        if not snap.is_file():
            from cdc_core.engines import schema_of

            before = schema_of(snaps[0]) if snaps else None
            typer.load_snapshot(Path(a.data) / f"{name}.csv", table, snap, previous=before)
        snaps.append(snap)
    master = ENGINES[a.engine]
    startup = 0.0
    if master:
        from cdc_core.engines.spark import SparkEngine

        engine = SparkEngine(settings=EngineConfig(type="spark", master=master,
                                                   conf={"spark.driver.memory": "4g"}))
        t0 = time.perf_counter()
        engine.spark  # noqa: B018 — open the session outside the timer
        startup = time.perf_counter() - t0
    else:
        engine = typer
    out = folder / f"changes-{a.engine}.parquet"
    out.unlink(missing_ok=True)
    t0 = time.perf_counter()
    changes = engine.diff(snaps[0], snaps[1], table, output=out, stamp={"_cdc_run_id": "20250101_000000"})
    seconds = time.perf_counter() - t0
    engine.close()
    return {"seconds": seconds, "startup": startup, "counts": changes.counts}


def run_cycle(a: argparse.Namespace) -> dict:
    sys.path.insert(0, str(ROOT))
    from cdc_core import load_config, run_once

    folder = Path(a.folder) / f"cycle-{a.engine}"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "source").mkdir(parents=True)
    table = {"name": "clientes", "pk": "idCliente", "date_field": "DtAtualizacao", "sep": ";"}
    base = {"source": {"type": "directory", "path": "source"}, "lake": "lake", "data_dir": "data",
            "tables": [table]}
    os.link(Path(a.data) / "previous.csv", folder / "source" / "clientes.csv")
    (folder / "config.json").write_text(json.dumps(base))
    first = run_once(load_config(folder / "config.json"))  # the lake's first capture, untimed, on DuckDB
    assert first.ok, first
    (folder / "source" / "clientes.csv").unlink()
    os.link(Path(a.data) / "current.csv", folder / "source" / "clientes.csv")
    engine = engine_config(a.engine)
    (folder / "config.json").write_text(json.dumps({**base, **({"engine": engine} if engine else {})}))
    config = load_config(folder / "config.json")
    t0 = time.perf_counter()
    report = run_once(config)
    seconds = time.perf_counter() - t0
    assert report.ok, [t.error for t in report.tables]
    counts = report.tables[0].counts
    shutil.rmtree(folder, ignore_errors=True)
    return {"seconds": seconds, "counts": counts}


def bench(a: argparse.Namespace) -> int:
    from diff_bench import machine, prepare

    workdir = Path(a.workdir)
    meta = prepare(a.rows, "csv", workdir)
    data = Path(meta["previous"]).parent
    folder = workdir / f"spark-{a.rows}"
    folder.mkdir(parents=True, exist_ok=True)
    results = {"rows": a.rows, "repeat": a.repeat, "expected": meta["expected"], "machine": machine(),
               "load_avg": os.getloadavg()[0], "runs": {}}
    for kind in a.kinds.split(","):
        for engine in a.engines.split(","):
            runs = []
            for _ in range(a.repeat):
                cmd = [sys.executable, __file__, "--_run", kind, "--engine", engine, "--folder", str(folder),
                       "--data", str(data)]
                proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if proc.returncode:
                    sys.exit(f"{kind}/{engine} failed:\n{proc.stderr[-3000:]}")
                run = json.loads(proc.stdout.strip().splitlines()[-1])
                if run["counts"] != meta["expected"]:
                    sys.exit(f"{kind}/{engine}: counts {run['counts']} != expected {meta['expected']}")
                runs.append(run)
                print(f"{kind:5} {engine:13} {a.rows:>11,} rows  {run['seconds']:7.2f} s"
                      + (f"  (session start {run['startup']:.1f} s)" if run.get("startup") else ""), file=sys.stderr)
            results["runs"][f"{kind}/{engine}"] = {
                "median_s": statistics.median(r["seconds"] for r in runs), "all_s": [r["seconds"] for r in runs],
                "startup_s": statistics.median(r.get("startup", 0.0) for r in runs)}
    if a.out:
        Path(a.out).write_text(json.dumps(results, indent=1))
    print(json.dumps(results["runs"], indent=1))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--kinds", default="diff,cycle")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--workdir", default=str(ROOT / "bench" / ".work"))
    parser.add_argument("--out")
    parser.add_argument("--_run", dest="run")
    parser.add_argument("--engine")
    parser.add_argument("--folder")
    parser.add_argument("--data")
    a = parser.parse_args()
    if a.run:
        print(json.dumps(run_diff(a) if a.run == "diff" else run_cycle(a)))
        return 0
    return bench(a)


if __name__ == "__main__":
    sys.exit(main())
