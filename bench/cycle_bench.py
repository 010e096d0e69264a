"""A whole `--once` capture vs the hand-written DuckDB diff of the same two files.

    .venv/bin/python bench/cycle_bench.py --rows 3000000 [--format csv|parquet] [--repeat 3] [--out FILE.json]
    .venv/bin/python bench/cycle_bench.py --summarize bench/results-cycle-*.json

The data is diff_bench.py's clientes-shaped pair (1% of rows updated, 0.5% deleted, 1% new, shuffled). The cycle
is the second capture of a table: a directory source whose `clientes` file moves from `previous` to `current`,
into a local lake whose first capture is already there (a template copied with hard links before every run, not
timed). It covers everything a user waits for: fetch (the source copy), CSV → typed snapshot, diff, CDC file, the
commit into the lake (claim, data, link, manifest, full load), the local commit. The baseline (`duckdb`) reads
both files with DuckDB's own sniffing, joins them and writes the change rows (diff_bench.py's method). Each run
is a fresh process timing only its work (imports excluded); the methods are interleaved; medians of R runs; peak
RSS is the child's VmHWM. The cycle's own per-stage timings (from the run report) are kept, so RESULTS.md can
say where the time goes.
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
from diff_bench import FORMATS, KEY, extension, label, machine, method_duckdb, prepare, rss_mib

TABLE = {"name": "clientes", "pk": KEY, "date_field": "DtAtualizacao", "sep": ";", "guards": {"max_delete_ratio": None}}


def template(rows: int, fmt: str, workdir: Path) -> tuple[Path, dict]:
    """A lake and data dir after the first capture of `previous` (made once per row count and format)."""
    data = prepare(rows, fmt, workdir)
    folder = workdir / f"cycle-{rows}-{fmt}"
    if not (folder / "done").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "source").mkdir(parents=True)
        config = {"source": {"type": "directory", "path": "source"}, "lake": "lake", "data_dir": "data",
                  "tables": [TABLE]}
        (folder / "config.json").write_text(json.dumps(config))
        os.link(data["previous"], folder / "source" / f"clientes.{extension(fmt)}")
        sys.path.insert(0, str(ROOT))
        from cdc_core import load_config, run_once

        report = run_once(load_config(folder / "config.json"))
        assert report.ok, report.tables[0].error
        (folder / "source" / f"clientes.{extension(fmt)}").unlink()
        (folder / "done").write_text("ok")
    return folder, data


def fresh_copy(folder: Path, current: str, fmt: str, target: Path) -> Path:
    shutil.rmtree(target, ignore_errors=True)
    subprocess.run(["cp", "-al", str(folder), str(target)], check=True)  # hard links: files are never rewritten
    os.link(current, target / "source" / f"clientes.{extension(fmt)}")
    return target / "config.json"


def child_cycle(config: Path) -> dict:
    sys.path.insert(0, str(ROOT))
    from cdc_core import load_config, run_once

    loaded = load_config(config)
    base = rss_mib("VmRSS")
    start, cpu = time.perf_counter(), time.process_time()
    report = run_once(loaded)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    table = report.tables[0]
    assert table.status == "changes", table.error
    return {"seconds": seconds, "cpu_s": cpu, "peak_rss_mib": rss_mib("VmHWM"), "base_rss_mib": base,
            "counts": table.counts, "stages": {**report.timings, **table.timings}}


def child_duckdb(previous: str, current: str, fmt: str, output: Path) -> dict:
    args = argparse.Namespace(format=fmt, previous=previous, current=current, output=str(output))
    run = method_duckdb(args)
    base = rss_mib("VmRSS")
    start, cpu = time.perf_counter(), time.process_time()
    run()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    ops = pc.value_counts(pq.read_table(output, columns=["op"])["op"]).to_pylist()
    return {"seconds": seconds, "cpu_s": cpu, "peak_rss_mib": rss_mib("VmHWM"), "base_rss_mib": base,
            "counts": {"I": 0, "U": 0, "D": 0} | {v["values"]: v["counts"] for v in ops}}


def bench(a: argparse.Namespace) -> dict:
    workdir = Path(a.workdir).resolve()
    folder, data = template(a.rows, a.format, workdir)
    runs: dict[str, list[dict]] = {"cycle": [], "duckdb": []}
    load = round(os.getloadavg()[0], 2)
    for i in range(a.repeat):
        for method in ("cycle", "duckdb"):  # interleaved: cycle, duckdb, cycle, duckdb, …
            if method == "cycle":
                config = fresh_copy(folder, data["current"], a.format, workdir / "cycle-run")
                cmd = [sys.executable, __file__, "--_cycle", str(config)]
            else:
                cmd = [sys.executable, __file__, "--_duckdb", data["previous"], data["current"], a.format,
                       str(workdir / "out-duckdb.parquet")]
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
            if proc.returncode:
                sys.exit(f"{method} failed:\n{proc.stderr[-3000:]}")
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            if result["counts"] != data["expected"]:
                sys.exit(f"{method}: counts {result['counts']} differ from the generator's {data['expected']}")
            runs[method].append(result)
            print(f"{method} {i + 1}/{a.repeat}: {result['seconds']:.2f} s ({result['cpu_s']:.2f} s CPU), "
                  f"peak {result['peak_rss_mib']:.0f} MiB", file=sys.stderr)
    summary = {m: {"median_s": round(statistics.median(r["seconds"] for r in rs), 3),
                   "median_cpu_s": round(statistics.median(r["cpu_s"] for r in rs), 3),
                   "runs_s": [round(r["seconds"], 3) for r in rs],
                   "peak_rss_mib": round(max(r["peak_rss_mib"] for r in rs), 1),
                   "base_rss_mib": round(max(r["base_rss_mib"] for r in rs), 1)} for m, rs in runs.items()}
    stages = {k: round(statistics.median(r["stages"].get(k, 0) for r in runs["cycle"]), 3)
              for k in runs["cycle"][0]["stages"]}
    return {"rows": a.rows, "format": a.format, "repeat": a.repeat, "expected": data["expected"],
            "load_avg_1m": load, "machine": machine(), "methods": summary, "cycle_stages_s": stages,
            "ratio": round(summary["cycle"]["median_s"] / summary["duckdb"]["median_s"], 2),
            "cpu_ratio": round(summary["cycle"]["median_cpu_s"] / summary["duckdb"]["median_cpu_s"], 2),
            "rss_ratio": round(summary["cycle"]["peak_rss_mib"] / summary["duckdb"]["peak_rss_mib"], 2)}


def render(results: list[dict]) -> str:
    lines = [("| rows | input | cycle median s | hand-written diff median s | cycle / diff | CPU time cycle / diff | "
             "cycle peak RSS MiB | diff peak RSS MiB | load avg |"), "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(results, key=lambda r: (r["format"], r["rows"])):
        c, d = r["methods"]["cycle"], r["methods"]["duckdb"]
        lines.append(f"| {label(r['rows'])} | {r['format']} | {c['median_s']:.2f} | {d['median_s']:.2f} | "
                     f"{r['ratio']:.2f}× | {r['cpu_ratio']:.2f}× | {c['peak_rss_mib']:.0f} | {d['peak_rss_mib']:.0f} | "
                     f"{r['load_avg_1m']} |")
    lines += ["", "Where the cycle's time goes (medians, seconds):", "",
              "| rows | input | " + " | ".join(results[0]["cycle_stages_s"]) + " |",
              "|---:|---|" + "---:|" * len(results[0]["cycle_stages_s"])]
    for r in sorted(results, key=lambda r: (r["format"], r["rows"])):
        lines.append(f"| {label(r['rows'])} | {r['format']} | "
                     + " | ".join(f"{r['cycle_stages_s'].get(k, 0):.2f}" for k in results[0]["cycle_stages_s"]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--format", choices=FORMATS, default="csv")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", default=str(ROOT / "bench" / ".work"))
    parser.add_argument("--out")
    parser.add_argument("--summarize", nargs="+")
    parser.add_argument("--_cycle")
    parser.add_argument("--_duckdb", nargs=4)
    a = parser.parse_args()
    if a._cycle:
        print(json.dumps(child_cycle(Path(a._cycle))))
    elif a._duckdb:
        print(json.dumps(child_duckdb(a._duckdb[0], a._duckdb[1], a._duckdb[2], Path(a._duckdb[3]))))
    elif a.summarize:
        print(render([json.loads(Path(p).read_text()) for p in a.summarize]))
    else:
        result = bench(a)
        print(render([result]))
        if a.out:
            Path(a.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
