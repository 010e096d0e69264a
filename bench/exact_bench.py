"""Our capture and `diff` against the same jobs done exactly by hand (`exact_job.py`, issue 29's anchor).

    python bench/exact_bench.py --rows 3000000 [--formats csv,parquet] [--jobs capture,diff] [--repeat 3]
                                [--exact-job ../shared/bench/exact_job.py] [--out bench/results-exact-3M.json]
    python bench/exact_bench.py --summarize bench/results-exact-*.json

The data is diff_bench.py's clientes-shaped pair (1 % of rows updated, 0.5 % deleted, 1 % new: 2.5 % churn,
shuffled), as CSV (`;`) and as Parquet. Two jobs, each timed as a whole fresh process (interpreter, imports and
work: what a user waits for), ours and the script's interleaved (ours, by hand, ours, …):

- capture: the second `python -m cdc_core --once` of a directory source whose `clientes` file moved from
  `previous` to `current`, into a local lake holding the first capture (cycle_bench.py's template, copied with
  hard links before each run) — against `exact_job.py cycle` (the previous text snapshot plus the new file give
  the change rows and the new snapshot);
- diff: `python -m cdc_core diff previous current --key idCliente --output …` — against `exact_job.py diff`.

Every run's I/U/D counts, read back from what it wrote, must be the generator's. Peak RSS is each child's own
(`wait4`'s ru_maxrss). The table gives medians of the runs and the ratio ours / by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from cycle_bench import fresh_copy, template
from diff_bench import FORMATS, KEY, label, machine, prepare

EXACT_JOB = ROOT.parent / "shared" / "bench" / "exact_job.py"
JOBS = ("capture", "diff")


# Runs one command and prints its wall time and peak RSS. A small process of its own: a child's ru_maxrss starts
# from its parent's peak (Linux keeps it across fork and exec), and this parent holds pyarrow and a capture.
LAUNCHER = """import json, os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
print(json.dumps({"seconds": time.perf_counter() - start, "rss_mib": usage.ru_maxrss / 1024,
                  "code": os.waitstatus_to_exitcode(status)}))"""


def timed(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """Run `cmd` as a fresh process: (wall seconds, its peak RSS in MiB); exit with its stderr if it fails."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", LAUNCHER, *cmd], cwd=cwd, env=env, capture_output=True, text=True,
                          check=False)
    run = json.loads(proc.stdout) if proc.stdout.strip() else {"code": proc.returncode}
    if run["code"]:
        sys.exit(f"{' '.join(cmd)} exited {run['code']}:\n{proc.stderr[-3000:]}")
    return run["seconds"], run["rss_mib"]


def counts(path: Path) -> dict[str, int]:
    """The I/U/D counts of a change file (or of the one CDC file under a lake folder)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if path.is_dir():
        (path,) = path.rglob("*.parquet")
    ops = pc.value_counts(pq.read_table(path, columns=["op"])["op"]).to_pylist()
    return {"I": 0, "U": 0, "D": 0} | {v["values"]: v["counts"] for v in ops}


def commands(job: str, fmt: str, a: argparse.Namespace, workdir: Path) -> dict[str, tuple]:
    """For one job and input format, after untimed preparation: {method: (the command, what it writes, what to do
    before each run or None)}."""
    py, sep = sys.executable, ["--sep", ";"]
    work = workdir / f"exact-{a.rows}-{fmt}"
    work.mkdir(parents=True, exist_ok=True)
    if job == "diff":
        data = prepare(a.rows, fmt, workdir)
        ours = [py, "-m", "cdc_core", "diff", data["previous"], data["current"], "--key", KEY, *sep,
                "--output", str(work / "ours.parquet")]
        exact = [py, str(a.exact_job), "diff", data["previous"], data["current"], str(work / "exact.parquet"),
                 "--key", KEY, *sep]
        return {"ours": (ours, work / "ours.parquet", None), "exact": (exact, work / "exact.parquet", None)}
    folder, data = template(a.rows, fmt, workdir)
    snapshot = work / "previous-snapshot.parquet"  # the script's previous snapshot: every column as text
    if not snapshot.is_file():
        subprocess.run([py, str(a.exact_job), "seed", data["previous"], str(snapshot), *sep], check=True,
                       stdout=subprocess.DEVNULL)
    config = work / "capture" / "config.json"
    ours = [py, "-m", "cdc_core", "--once", "-q", "--config", str(config)]
    exact = [py, str(a.exact_job), "cycle", str(snapshot), data["current"], str(work / "exact.parquet"),
             "--snapshot", str(work / "exact-snapshot.parquet"), "--key", KEY, *sep]
    def fresh_lake():  # the first capture's lake and data dir, and the new file in the source folder
        fresh_copy(folder, data["current"], fmt, work / "capture")
    return {"ours": (ours, work / "capture" / "lake" / "cdc", fresh_lake),
            "exact": (exact, work / "exact.parquet", None)}


def installed() -> None:
    """Our package as an install holds it: its modules compiled to bytecode once, as pip does at install time (a
    clone writes the bytecode on its first run). Without this, a machine with PYTHONDONTWRITEBYTECODE set (this one)
    compiles every module of ours again in every run, ~0.06 s the script never pays (its one file is tiny)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "cdc_core")], check=True)


def bench(a: argparse.Namespace) -> dict:
    workdir = Path(a.workdir).resolve()
    installed()
    result = {"rows": a.rows, "repeat": a.repeat, "exact_job": str(a.exact_job), "machine": machine(),
              "load_avg_1m": {"start": round(os.getloadavg()[0], 2)}, "jobs": []}
    for job in a.jobs.split(","):
        for fmt in a.formats.split(","):
            methods = commands(job, fmt, a, workdir)
            expected = prepare(a.rows, fmt, workdir)["expected"]
            runs: dict[str, list[tuple[float, float]]] = {"ours": [], "exact": []}
            for i in range(a.repeat):
                for method, (cmd, output, before) in methods.items():
                    if before:
                        before()
                    seconds, rss = timed(cmd, workdir)
                    found = counts(output)
                    if found != expected:
                        sys.exit(f"{job} {fmt} {method}: counts {found} differ from the generator's {expected}")
                    runs[method].append((seconds, rss))
                    print(f"{job} {fmt} {method} {i + 1}/{a.repeat}: {seconds:.2f} s, peak {rss:.0f} MiB",
                          file=sys.stderr)
            median = {m: round(statistics.median(s for s, _ in r), 3) for m, r in runs.items()}
            result["jobs"].append({
                "job": job, "format": fmt, "counts": expected, "median_s": median,
                "runs_s": {m: [round(s, 3) for s, _ in r] for m, r in runs.items()},
                "peak_rss_mib": {m: round(max(x for _, x in r)) for m, r in runs.items()},
                "ratio": round(median["ours"] / median["exact"], 2)})
    result["load_avg_1m"]["end"] = round(os.getloadavg()[0], 2)
    return result


def render(results: list[dict]) -> str:
    lines = [("| job | input | rows | ours s | by hand, exact s | ratio | ours peak RSS MiB | by hand peak RSS MiB "
              "| load avg (start → end) | commit, date |"), "|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
    what = {"capture": "a capture (`--once`, second run)", "diff": "`python -m cdc_core diff`"}
    for r in sorted(results, key=lambda r: r["rows"]):
        load = f"{r['load_avg_1m']['start']} → {r['load_avg_1m']['end']}"
        when = f"{r['machine']['git']}, {r['machine']['date']}"
        for j in r["jobs"]:
            t, rss = j["median_s"], j["peak_rss_mib"]
            lines.append(f"| {what[j['job']]} | {j['format']} | {label(r['rows'])} | {t['ours']:.2f} | "
                         f"{t['exact']:.2f} | {j['ratio']:.2f}× | {rss['ours']} | {rss['exact']} | {load} | {when} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the previous version")
    parser.add_argument("--formats", default="csv,parquet", help="input formats: csv, parquet (as diff_bench generates it: INTEGER columns, naive timestamps), lake-parquet (already in the lake's types)")
    parser.add_argument("--jobs", default=",".join(JOBS), help="capture, diff or both")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each method (medians)")
    parser.add_argument("--exact-job", type=Path, default=EXACT_JOB, help="the by-hand script (exact_job.py)")
    parser.add_argument("--workdir", default=str(ROOT / "bench" / ".work"), help="generated data and outputs")
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--summarize", nargs="+", metavar="JSON", help="render result files as one table")
    a = parser.parse_args()
    if a.summarize:
        print(render([json.loads(Path(p).read_text()) for p in a.summarize]))
        return
    if not a.exact_job.is_file():
        parser.error(f"{a.exact_job} not found: pass --exact-job PATH (issue 29's exact_job.py)")
    unknown = set(a.jobs.split(",")) - set(JOBS) | set(a.formats.split(",")) - set(FORMATS)
    if unknown:
        parser.error(f"unknown job or format: {', '.join(sorted(unknown))}")
    result = bench(a)
    print(render([result]))
    if a.out:
        Path(a.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
