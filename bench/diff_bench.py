"""Benchmark `cdc_core.engines.duckdb.diff` against a hand-written DuckDB query and the seed-style pandas merge.

    .venv/bin/python bench/diff_bench.py --rows 1000000 --format parquet --repeat 3 \
        --out bench/results-1M-parquet.json [--methods cdc,duckdb,pandas] [--memory-limit 1GB] [--workdir DIR]
    .venv/bin/python bench/diff_bench.py --summarize bench/results-*.json > bench/RESULTS.md

Data: two `clientes`-shaped snapshots made by DuckDB SQL (deterministic, bounded memory), cached per row count
in `--workdir` (default `bench/.work`, git-ignored). `previous` has N rows; `current` has 1% of them updated
(qtdePontos changed, DtAtualizacao bumped), 0.5% deleted and 1% new rows; both are shuffled.

Each run of each method is a fresh interpreter (`--_run METHOD`, internal) that times only the diff: reading
both inputs, comparing, writing the change rows to Parquet; imports are excluded. Peak RSS is the child's own
VmHWM (whole process, imports included; the RSS after imports is reported too; RUSAGE_CHILDREN would be a max
over all children so far). The parent checks each method's I/U/D counts, read back from its output file,
against the generator's and stops if they differ.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEY = "idCliente"
FLAGS = ["flEmail", "flTwitch", "flYouTube", "flBlueSky", "flInstagram"]
COLUMNS = [KEY, *FLAGS, "qtdePontos", "DtCriacao", "DtAtualizacao"]
METHODS = ("cdc", "duckdb", "pandas")
LIBS = ("duckdb", "pandas", "pyarrow")
FORMATS = ("csv", "parquet", "lake-parquet")  # lake-parquet: Parquet already in the lake's types
LAKE_PARQUET = FORMATS[2]
TS_FORMAT = "%Y-%m-%d %H:%M:%S.%g"  # DuckDB's %g: milliseconds, like the real clientes.csv


def lit(text: object) -> str:
    return "'" + str(text).replace("'", "''") + "'"


# --- data --------------------------------------------------------------------------------------------------

def prepare(rows: int, fmt: str, workdir: Path) -> dict:
    """The cached snapshots for `rows` in `fmt` (generated on first use) and the expected I/U/D counts."""
    import duckdb

    folder = workdir / f"clientes-{rows}"
    folder.mkdir(parents=True, exist_ok=True)
    meta_path = folder / "expected.json"
    con = duckdb.connect(config={"memory_limit": "2GB", "temp_directory": str(workdir / "gen-tmp")})
    if not meta_path.is_file():  # written last: its presence means the Parquet pair is complete
        t0 = time.perf_counter()
        inserts = rows // 100
        con.execute("CREATE MACRO rnd(i, k) AS hash(i * 32 + k)")  # independent streams (hash(i, 'x') is not)
        con.execute(f"""CREATE VIEW gen AS SELECT i, r, rnd(i, 1) AS shuffle_prev, rnd(i, 2) AS shuffle_cur,
            substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-4' || substr(h, 14, 3) || '-' || substr(h, 17, 4)
                || '-' || substr(h, 21, 12) AS {KEY},
            {', '.join(f"(rnd(i, {10 + j}) % 2)::INTEGER AS {f}" for j, f in enumerate(FLAGS))},
            (rnd(i, 3) % 50000)::INTEGER AS qtdePontos,
            TIMESTAMP '2024-02-01' + to_milliseconds((rnd(i, 4) % 20736000000)::BIGINT) AS DtCriacao,
            DtCriacao + to_milliseconds((rnd(i, 5) % 17280000000)::BIGINT) AS DtAtualizacao,
            i < {rows} AND r < 10 AS updated, i < {rows} AND r >= 10 AND r < 15 AS deleted
            FROM (SELECT i, md5('cliente-' || i) AS h, rnd(i, 6) % 1000 AS r
                  FROM range({rows + inserts}) t(i))""")
        bumped = {"qtdePontos": "qtdePontos + 1 + (rnd(i, 7) % 500)::INTEGER",
                  "DtAtualizacao": "TIMESTAMP '2025-09-22' + to_milliseconds((rnd(i, 8) % 86400000)::BIGINT)"}
        current = ", ".join(f"CASE WHEN updated THEN {bumped[c]} ELSE {c} END AS {c}" if c in bumped else c
                            for c in COLUMNS)
        for name, query in (
                ("previous", f"SELECT {', '.join(COLUMNS)} FROM gen WHERE i < {rows} ORDER BY shuffle_prev"),
                ("current", f"SELECT {current} FROM gen WHERE NOT deleted ORDER BY shuffle_cur")):
            con.execute(f"COPY ({query}) TO {lit(folder / f'{name}.parquet')} (FORMAT parquet)")
        u, d = con.execute(f"SELECT count(*) FILTER (updated), count(*) FILTER (deleted) FROM gen "
                           f"WHERE i < {rows}").fetchone()
        meta = {"rows": rows, "expected": {"I": inserts, "U": u, "D": d}, "duckdb": duckdb.__version__}
        meta_path.write_text(json.dumps(meta, indent=1))
        print(f"generated {rows:,} rows in {time.perf_counter() - t0:.1f}s → {folder}", file=sys.stderr)
    if fmt == "csv":  # derived from the Parquet pair, so both formats hold the same data
        for name in ("previous", "current"):
            csv = folder / f"{name}.csv"
            if not csv.is_file():
                tmp = csv.with_suffix(".csv.tmp")
                con.execute(f"COPY (FROM read_parquet({lit(folder / f'{name}.parquet')})) TO {lit(tmp)} "
                            f"(FORMAT csv, HEADER, DELIMITER ';', TIMESTAMPFORMAT '{TS_FORMAT}')")
                tmp.rename(csv)
    if fmt == LAKE_PARQUET:  # the same data already in the lake's types: BIGINT, UTC timestamps, all optional
        for name in ("previous", "current"):
            typed = folder / f"{name}-lake.parquet"
            if not typed.is_file():
                tmp = typed.with_suffix(".tmp")
                kinds = {c: "BIGINT" for c in (*FLAGS, "qtdePontos")} | {"DtCriacao": "TIMESTAMPTZ",
                                                                         "DtAtualizacao": "TIMESTAMPTZ"}
                # a CASE hides the statistics that would make DuckDB declare a column `required`
                select = ", ".join(f"CASE WHEN {c} IS NULL THEN NULL ELSE CAST({c} AS {kinds.get(c, 'VARCHAR')}) "
                                   f"END AS {c}" for c in COLUMNS)
                con.execute("SET TimeZone = 'UTC'")
                con.execute(f"COPY (SELECT {select} FROM read_parquet({lit(folder / f'{name}.parquet')})) "
                            f"TO {lit(tmp)} (FORMAT parquet)")
                tmp.rename(typed)
    con.close()
    meta = json.loads(meta_path.read_text())
    meta.update({name: str(folder / (f"{name}-lake.parquet" if fmt == LAKE_PARQUET else f"{name}.{fmt}"))
                 for name in ("previous", "current")})
    return meta


def extension(fmt: str) -> str:
    """The file extension of an input format (`lake-parquet` is Parquet)."""
    return "parquet" if fmt == LAKE_PARQUET else fmt


# --- the methods, each run in a fresh child process ---------------------------------------------------------
# Each `method_*` does its imports and returns `run()`, the timed part: read both inputs, diff, write output.

def method_cdc(a: argparse.Namespace):
    sys.path.insert(0, a.cdc_src or str(ROOT))

    import cdc_core
    from cdc_core.config import EngineConfig
    from cdc_core.engines.duckdb.connection import connect
    if not Path(cdc_core.__file__).resolve().is_relative_to(Path(a.cdc_src or ROOT).resolve()):
        sys.exit(f"cdc_core was imported from {cdc_core.__file__}, not from {a.cdc_src or ROOT}")

    def run():
        kw = {"sep": ";"} if a.format == "csv" else {}
        if a.memory_limit:
            engine = EngineConfig(memory_limit=a.memory_limit)
            kw["con"] = connect(engine, spill_dir=Path(a.workdir) / "spill")
        cs = cdc_core.engines.duckdb.diff(a.previous, a.current, KEY, date_field="DtAtualizacao", output=Path(a.output), **kw)
        return cs.counts
    return run


def method_duckdb(a: argparse.Namespace):
    import duckdb

    def run():
        con = duckdb.connect()
        src = ((lambda p: f"read_csv({lit(p)}, delim=';', header=true)") if a.format == "csv"
               else (lambda p: f"read_parquet({lit(p)})"))
        cols = COLUMNS[1:]
        pick = ", ".join(f"CASE WHEN c.{KEY} IS NULL THEN p.{c} ELSE c.{c} END AS {c}" for c in cols)
        changed = " OR ".join(f"p.{c} IS DISTINCT FROM c.{c}" for c in cols)
        con.execute(f"""COPY (
            SELECT CASE WHEN p.{KEY} IS NULL THEN 'I' WHEN c.{KEY} IS NULL THEN 'D' ELSE 'U' END AS op,
                   COALESCE(c.{KEY}, p.{KEY}) AS {KEY}, {pick}
            FROM {src(a.previous)} p FULL OUTER JOIN {src(a.current)} c ON p.{KEY} = c.{KEY}
            WHERE p.{KEY} IS NULL OR c.{KEY} IS NULL OR {changed}
        ) TO {lit(a.output)} (FORMAT parquet)""")
    return run


def method_pandas(a: argparse.Namespace):
    import pandas as pd

    def run():  # the seed's way: read both, outer merge with indicator, naive != on the suffixed columns
        read = (lambda p: pd.read_csv(p, sep=";")) if a.format == "csv" else pd.read_parquet
        prev, cur = read(a.previous), read(a.current)
        cols = [c for c in cur.columns if c != KEY]
        m = prev.merge(cur, how="outer", on=KEY, indicator=True, suffixes=("_prev", "_cur"))
        changed = pd.Series(False, index=m.index)
        for c in cols:
            changed |= m[f"{c}_prev"] != m[f"{c}_cur"]
        parts = []
        for op, mask, suffix in (("I", m["_merge"] == "right_only", "_cur"),
                                 ("U", (m["_merge"] == "both") & changed, "_cur"),
                                 ("D", m["_merge"] == "left_only", "_prev")):
            part = m.loc[mask, [KEY] + [c + suffix for c in cols]].set_axis([KEY, *cols], axis=1)
            parts.append(part.assign(op=op)[["op", KEY, *cols]])
        out = pd.concat(parts, ignore_index=True).astype(cur.dtypes.to_dict())  # ints went float in the merge
        out.to_parquet(a.output, index=False)
    return run


def rss_mib(field: str) -> float:
    """VmHWM (peak) or VmRSS (now) of this process in MiB (Linux)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024


def child(a: argparse.Namespace) -> None:
    run = globals()[f"method_{a._run}"](a)
    base = rss_mib("VmRSS")
    t0 = time.perf_counter()
    api_counts = run()
    seconds = time.perf_counter() - t0
    peak = rss_mib("VmHWM")
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    ops = pc.value_counts(pq.read_table(a.output, columns=["op"])["op"]).to_pylist()
    counts = {op: 0 for op in "IUD"} | {v["values"]: v["counts"] for v in ops}
    if api_counts is not None and dict(api_counts) != counts:
        sys.exit(f"{a._run}: reported counts {dict(api_counts)} but its output file has {counts}")
    print(json.dumps({"seconds": seconds, "peak_rss_mib": peak, "base_rss_mib": base, "counts": counts}))


# --- the parent: run, check, report -------------------------------------------------------------------------

def machine() -> dict:
    def proc(path: str, key: str) -> str:  # a field of /proc/cpuinfo or /proc/meminfo
        try:
            return next(line.split(":", 1)[1].strip() for line in open(path) if line.startswith(key))
        except (OSError, StopIteration):
            return "?"

    def git(*cmd: str) -> str:
        done = subprocess.run(["git", "-C", str(ROOT), *cmd], capture_output=True, text=True, check=False)
        return done.stdout.strip()
    ram = proc("/proc/meminfo", "MemTotal").split()[0]
    return {"cpu": proc("/proc/cpuinfo", "model name"), "cores": os.cpu_count(),
            "ram": f"{int(ram) / 2**20:.1f} GiB" if ram.isdigit() else "?", "os": platform.platform(),
            "python": platform.python_version(), **{m: metadata.version(m) for m in LIBS},
            "git": git("rev-parse", "--short", "HEAD")
            + (" (cdc_core has uncommitted changes)" if git("status", "--porcelain", "cdc_core") else ""),
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")}


def bench(a: argparse.Namespace) -> int:
    workdir = Path(a.workdir).resolve()
    data = prepare(a.rows, a.format, workdir)
    expected, failed = data["expected"], False
    cdc_src = a.cdc_src and str(Path(a.cdc_src).resolve())
    if cdc_src and not Path(cdc_src, "cdc_core", "__init__.py").is_file():
        sys.exit(f"--cdc-src {a.cdc_src}: no cdc_core package in that folder")
    result = {"rows": a.rows, "format": a.format, "repeat": a.repeat, "memory_limit": a.memory_limit,
              "cdc_src": cdc_src, "expected": expected,
              "input_mib": {s: round(os.path.getsize(data[s]) / 2**20, 1) for s in ("previous", "current")},
              "load_avg_1m": round(os.getloadavg()[0], 2), "machine": machine(), "methods": {}}
    (workdir / "out").mkdir(exist_ok=True)
    for method in a.methods.split(","):
        out = workdir / "out" / f"{method}-{a.rows}-{a.format}.parquet"
        cmd = [sys.executable, __file__, "--_run", method, "--format", a.format, "--workdir", str(workdir),
               "--_previous", data["previous"], "--_current", data["current"], "--_output", str(out)]
        if method == "cdc":
            cmd += ["--memory-limit", a.memory_limit] if a.memory_limit else []
            cmd += ["--cdc-src", cdc_src] if cdc_src else []
        runs: list[dict] = []
        for i in range(a.repeat):
            out.unlink(missing_ok=True)
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
            if proc.returncode:
                error = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
                print(f"{proc.stderr.rstrip()}\n!! {method} FAILED: {error}", file=sys.stderr)
                result["methods"][method] = {"error": error}
                failed = True
                break
            run = json.loads(proc.stdout.strip().splitlines()[-1])
            if run["counts"] != expected:
                sys.exit(f"!! {method}: counts {run['counts']} differ from the generator's {expected}")
            print(f"{method} run {i + 1}/{a.repeat}: {run['seconds']:.2f}s, "
                  f"peak {run['peak_rss_mib']:.0f} MiB", file=sys.stderr)
            runs.append(run)
        else:
            result["methods"][method] = {
                "median_s": round(statistics.median(r["seconds"] for r in runs), 3),
                "runs_s": [round(r["seconds"], 3) for r in runs],
                "peak_rss_mib": round(max(r["peak_rss_mib"] for r in runs), 1),
                "base_rss_mib": round(max(r["base_rss_mib"] for r in runs), 1), "counts": runs[0]["counts"]}
    ok = {m: v for m, v in result["methods"].items() if "error" not in v}

    def ratio(x: str, y: str) -> float | None:
        return round(ok[x]["median_s"] / ok[y]["median_s"], 2) if x in ok and y in ok else None
    result["ratios"] = {"cdc_time_over_duckdb": ratio("cdc", "duckdb"),
                        "pandas_time_over_cdc": ratio("pandas", "cdc"),
                        "cdc_peak_rss_mib": ok.get("cdc", {}).get("peak_rss_mib")}
    print(render([result], facts=False))
    if a.out:
        Path(a.out).write_text(json.dumps(result, indent=1) + "\n")
    return 1 if failed else 0


def label(rows: int) -> str:
    return f"{rows // 10**6}M" if rows % 10**6 == 0 else f"{rows // 1000}k" if rows % 1000 == 0 else str(rows)


def render(results: list[dict], facts: bool = True) -> str:
    def show(v: object, suffix: str = "") -> str:
        return "—" if v is None else f"{v}{suffix}"

    def head(r: dict) -> str:  # rows, input format, cdc options
        opts = [f"memory_limit {r['memory_limit']}" if r.get("memory_limit") else "",
                f"cdc_core from {r['cdc_src']}" if r.get("cdc_src") else ""]
        return f"| {label(r['rows'])} | {r['format']} | {', '.join(filter(None, opts)) or '—'} |"
    results = sorted(results, key=lambda r: (r["rows"], r["format"], head(r)))
    lines = []
    if facts:
        lines += ["# cdc_core diff benchmark", "",
                  "Generated by `bench/diff_bench.py --summarize` (see `bench/README.md`).", ""]
        machines: dict[str, list[dict]] = {}  # one table per machine and versions, listing dates and commits
        for r in results:
            m = {k: v for k, v in r["machine"].items() if k not in ("date", "git")}
            machines.setdefault(json.dumps(m), []).append(r["machine"])
        for key, ms in machines.items():
            dates = sorted(m["date"] for m in ms)
            rows = {**json.loads(key), "git": ", ".join(sorted({m["git"] for m in ms})),
                    "date": dates[0] if dates[0] == dates[-1] else f"{dates[0]} … {dates[-1]}"}
            lines += ["| machine | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows.items()), ""]
    header = "rows|input|cdc options|method|median s|runs s|peak RSS MiB|RSS after imports MiB|I|U|D"
    lines += [f"| {header.replace('|', ' | ')} |", "|---:|---|---|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in results:
        for method, v in r["methods"].items():
            if "error" in v:
                error = v["error"][:100].replace("|", "/")
                lines.append(f"{head(r)} {method} | FAILED: {error} | | | | | | |")
                continue
            c = v["counts"]
            runs = ", ".join(f"{s:.2f}" for s in v["runs_s"])
            lines.append(f"{head(r)} {method} | {v['median_s']:.2f} | {runs} | {v['peak_rss_mib']:.0f} "
                         f"| {v['base_rss_mib']:.0f} | {c['I']:,} | {c['U']:,} | {c['D']:,} |")
    lines += ["", ("| rows | input | cdc options | cdc time / duckdb time | pandas time / cdc time "
                   "| cdc peak RSS MiB | load avg at start |"), "|---:|---|---|---:|---:|---:|---:|"]
    for r in results:
        x = r["ratios"]
        lines.append(f"{head(r)} {show(x['cdc_time_over_duckdb'], '×')} | "
                     f"{show(x['pandas_time_over_cdc'], '×')} | "
                     f"{show(x['cdc_peak_rss_mib'])} | {show(r.get('load_avg_1m'))} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000, help="rows of the previous snapshot")
    p.add_argument("--format", choices=("parquet", "csv"), default="parquet", help="input file format")
    p.add_argument("--repeat", type=int, default=3, help="runs per method (median time, max RSS)")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of cdc,duckdb,pandas")
    p.add_argument("--memory-limit", help="DuckDB memory_limit for the cdc method only, e.g. 1GB")
    p.add_argument("--cdc-src", help="import cdc_core from this folder (e.g. HEAD exported), not the repo")
    p.add_argument("--workdir", default=str(ROOT / "bench" / ".work"), help="generated data and outputs")
    p.add_argument("--out", help="write the results as JSON here")
    p.add_argument("--summarize", nargs="+", metavar="JSON", help="render result files as one markdown page")
    for hidden in ("--_run", "--_previous", "--_current", "--_output"):
        p.add_argument(hidden, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a._run:
        a.previous, a.current, a.output = a._previous, a._current, a._output
        child(a)
        return 0
    if a.summarize:
        print(render([json.loads(Path(f).read_text()) for f in a.summarize]), end="")
        return 0
    unknown = set(a.methods.split(",")) - set(METHODS)
    if unknown:
        p.error(f"unknown method(s) {', '.join(sorted(unknown))}: choose from {', '.join(METHODS)}")
    return bench(a)


if __name__ == "__main__":
    sys.exit(main())
