"""Benchmark the table-format commit of one run (Delta, Iceberg) next to the run's diff.

    .venv/bin/python bench/format_bench.py --rows 1000000 --repeat 3 --out bench/results-format-1M.json
    .venv/bin/python bench/format_bench.py --summarize bench/results-format-*.json

Data: the `clientes`-shaped pair of `diff_bench.py` (same generator and cache in `--workdir`): N rows, then 1%
updated, 0.5% deleted, 1% inserted (2.5% churn). The change set is made once by `cdc_core.engines.duckdb.diff` and written as the
pipeline writes it (`op`, the row, `_cdc_run_id`, `_cdc_captured_at`).

Each measurement is a fresh interpreter; imports are excluded from the timer:
- `diff`: `cdc_core.engines.duckdb.diff(previous, current)` plus writing the change rows — the cycle's own work on Parquet input;
- `create`: the first capture, the format table made from the previous snapshot (once per format and size);
- `apply`: the timed cost per run — one `apply()` of the change set onto that table, restored from a pristine
  copy before every repeat. The child then checks the result outside the timer: the table's row count equals the
  current snapshot's, and (Delta) the version's change data feed has the generator's I/U/D.
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
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from diff_bench import KEY, ROOT, label, machine, prepare, rss_mib  # the sibling script's helpers

FORMATS = ("delta", "iceberg")
RUNS = ("20250918_120000", "20250922_120000")  # the previous and the current snapshot's run ids


def runs(data: dict, changes: Path):
    """The two runs: the first capture of `previous`, then the change set that makes `current`."""
    sys.path.insert(0, str(ROOT))
    from cdc_core.formats import FormatRun

    first = FormatRun("clientes", RUNS[0], (KEY,), Path(data["previous"]), None, True)
    second = FormatRun("clientes", RUNS[1], (KEY,), Path(data["current"]), changes, False)
    return first, second


def make(fmt: str, lake: Path):
    from cdc_core.config import parse_config
    from cdc_core.formats import make_format

    config = parse_config({"source": {"type": "demo"}, "lake": str(lake), "table_format": fmt,
                           "tables": [{"name": "clientes", "pk": KEY}]}, base_dir=lake.parent)
    return make_format(config.table_format, config.lake)


# --- the children ---------------------------------------------------------------------------------------------

def child(a: argparse.Namespace) -> None:
    data = json.loads(a._data)
    changes = Path(data["changes"])
    if a._run == "diff":
        import pyarrow as pa
        import pyarrow.parquet as pq

        sys.path.insert(0, str(ROOT))
        import cdc_core

        def work():
            rows = cdc_core.engines.duckdb.diff(data["previous"], data["current"], KEY, date_field="DtAtualizacao").rows
            n = rows.num_rows
            rows = rows.append_column("_cdc_run_id", pa.array([RUNS[1]] * n, pa.string()))
            rows = rows.append_column("_cdc_captured_at", pa.array([time.time_ns() // 1000] * n,
                                                                   pa.timestamp("us", tz="UTC")))
            pq.write_table(rows, a._output)
    else:
        first, second = runs(data, changes)
        fmt = make(a._format, Path(a._lake))

        def work():
            return fmt.apply(first if a._run == "create" else second)
    base = rss_mib("VmRSS")
    t0 = time.perf_counter()
    version = work()
    seconds = time.perf_counter() - t0
    peak = rss_mib("VmHWM")
    out = {"seconds": seconds, "peak_rss_mib": peak, "base_rss_mib": base, "version": version}
    if a._run == "apply":
        out.update(check(fmt, a._format, version))
    print(json.dumps(out))


def check(fmt, name: str, version: int) -> dict:
    """The table's row count and, for Delta, the change data feed of the run's version."""
    import pyarrow as pa

    out = {"rows_after": fmt.current("clientes").num_rows}
    if name == "delta":
        from deltalake import DeltaTable

        feed = pa.table(DeltaTable(fmt.uri("clientes")).load_cdf(starting_version=version, ending_version=version,
                                                                 columns=["_change_type"]))
        kinds = [str(k) for k in feed["_change_type"].to_pylist()]
        out["counts"] = {"I": kinds.count("insert"), "U": kinds.count("update_postimage"),
                         "D": kinds.count("delete")}
    return out


# --- the parent -----------------------------------------------------------------------------------------------

def spawn(a: argparse.Namespace, run: str, data: dict, **extra: str) -> dict:
    cmd = [sys.executable, __file__, "--_run", run, "--_data", json.dumps(data)]
    for k, v in extra.items():
        cmd += [f"--_{k}", str(v)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode and not (lines and lines[-1].startswith("{")):
        sys.exit(f"{proc.stderr.rstrip()}\n!! {run} {extra.get('format', '')} failed")
    result = json.loads(lines[-1])
    if proc.returncode:  # it reported, then died on the way out: keep the measurement, say so
        print(f"!! {run} {extra.get('format', '')} exited {proc.returncode} after reporting: "
              f"{proc.stderr.strip()[-300:]}", file=sys.stderr)
        result["exit_code"] = proc.returncode
    return result


def median_of(results: list[dict]) -> dict:
    return {"median_s": round(statistics.median(r["seconds"] for r in results), 3),
            "runs_s": [round(r["seconds"], 3) for r in results],
            "peak_rss_mib": round(max(r["peak_rss_mib"] for r in results), 1)}


def bench(a: argparse.Namespace) -> None:
    workdir = Path(a.workdir).resolve()
    data = prepare(a.rows, "parquet", workdir)
    folder = workdir / f"clientes-{a.rows}"
    data["changes"] = str(folder / "changes.parquet")
    result = {"rows": a.rows, "repeat": a.repeat, "expected": data["expected"],
              "load_avg_1m": round(os.getloadavg()[0], 2), "machine": {
        **machine(), **{m: metadata.version(m) for m in ("deltalake", "pyiceberg")}}, "formats": {}}
    diffs = []
    for i in range(a.repeat):
        diffs.append(spawn(a, "diff", data, output=data["changes"]))
        print(f"diff run {i + 1}/{a.repeat}: {diffs[-1]['seconds']:.2f}s", file=sys.stderr)
    result["diff"] = median_of(diffs)
    for name in a.formats.split(","):
        home = workdir / "formats" / f"{name}-{a.rows}"
        shutil.rmtree(home, ignore_errors=True)
        lake, pristine = home / "lake", home / "pristine"
        create = spawn(a, "create", data, format=name, lake=lake)
        print(f"{name} create: {create['seconds']:.2f}s", file=sys.stderr)
        shutil.copytree(lake, pristine)
        applies = []
        for i in range(a.repeat):
            shutil.rmtree(lake)
            shutil.copytree(pristine, lake)  # the same path: Iceberg metadata holds absolute paths
            run = spawn(a, "apply", data, format=name, lake=lake)
            expected_rows = a.rows + data["expected"]["I"] - data["expected"]["D"]
            if run["rows_after"] != expected_rows or run.get("counts", data["expected"]) != data["expected"]:
                sys.exit(f"!! {name}: {run} does not match the generator's {data['expected']}")
            print(f"{name} apply run {i + 1}/{a.repeat}: {run['seconds']:.2f}s, peak {run['peak_rss_mib']:.0f} MiB",
                  file=sys.stderr)
            applies.append(run)
        result["formats"][name] = {"create": median_of([create]), "apply": median_of(applies),
                                   "exit_codes": [r["exit_code"] for r in [create, *applies] if "exit_code" in r],
                                   "over_diff": round(median_of(applies)["median_s"] / result["diff"]["median_s"],
                                                      2)}
        shutil.rmtree(home, ignore_errors=True)
    print(render([result]))
    if a.out:
        Path(a.out).write_text(json.dumps(result, indent=1) + "\n")


def render(results: list[dict]) -> str:
    lines = [("| rows | format | first capture s | commit per run: median s | runs s | peak RSS MiB "
              "| diff median s | commit / diff |"), "|---:|---|---:|---:|---|---:|---:|---:|"]
    for r in sorted(results, key=lambda r: r["rows"]):
        for name, v in r["formats"].items():
            lines.append(f"| {label(r['rows'])} | {name} | {v['create']['median_s']:.2f} | "
                         f"{v['apply']['median_s']:.2f} | {', '.join(f'{s:.2f}' for s in v['apply']['runs_s'])} | "
                         f"{v['apply']['peak_rss_mib']:.0f} | {r['diff']['median_s']:.2f} | {v['over_diff']}× |")
    m = results[0]["machine"]
    lines += ["", "load average at start: " + ", ".join(f"{label(r['rows'])}: {r.get('load_avg_1m')}" for r in results),
              "", f"{m['cores']} cores, {m['ram']}, Python {m['python']}, deltalake {m['deltalake']}, pyiceberg "
              f"{m['pyiceberg']}, pyarrow {m['pyarrow']}, commit {m['git']}, {m['date']}; churn per run: "
              + ", ".join(f"{label(r['rows'])}: I {r['expected']['I']:,} U {r['expected']['U']:,} "
                          f"D {r['expected']['D']:,}" for r in results)]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000, help="rows of the previous snapshot")
    p.add_argument("--repeat", type=int, default=3, help="timed applies (and diffs) per format; the median counts")
    p.add_argument("--formats", default=",".join(FORMATS), help="comma-separated subset of delta,iceberg")
    p.add_argument("--workdir", default=str(ROOT / "bench" / ".work"), help="generated data and tables")
    p.add_argument("--out", help="write the results as JSON here")
    p.add_argument("--summarize", nargs="+", metavar="JSON", help="render result files as one markdown table")
    for hidden in ("--_run", "--_data", "--_format", "--_lake", "--_output"):
        p.add_argument(hidden, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a._run:
        child(a)
    elif a.summarize:
        print(render([json.loads(Path(f).read_text()) for f in a.summarize]), end="")
    else:
        bench(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
