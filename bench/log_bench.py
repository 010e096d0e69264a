"""What the commit log costs as the history grows: S3 requests per capture, and replay time with and without
checkpoints.

    python bench/log_bench.py --runs 1000            # ~15 minutes on 2 cores; --runs 100 for a quick look

A 1,000-row table with one changed row per capture (issue 25's case), captured `--runs` times by `run_once` (each
time with the per-process caches emptied, as a cron job's fresh process would have them):

1. into an S3 lake on moto's server (loopback), counting every request the capture sends;
2. into two local lakes, one with the default `checkpoint_every` (100) and one without checkpoints, then timing
   `replay` of the head in a fresh process (median of 3).

Prints a Markdown table and writes `bench/results-log-{runs}.json`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def capture_runs(folder: Path, runs: int, lake: str, checkpoint_every: int, count=None) -> list[int]:
    """`runs` captures of the one-row-changing table; the requests each sent (when `count` is given)."""
    from cdc_core import lake as lake_module
    from cdc_core import load_config, run_once

    (folder / "source").mkdir(parents=True, exist_ok=True)
    config = folder / "config.json"
    config.write_text(json.dumps({"source": {"type": "directory", "path": "source"}, "lake": lake,
                                  "data_dir": "data", "checkpoint_every": checkpoint_every,
                                  "metrics": {"textfile": False},
                                  "tables": [{"name": "t", "pk": "id", "sep": ";"}]}))
    per_run = []
    for run in range(runs):
        rows = [f"{i};{run if i == run % 1000 else 0}" for i in range(1000)]
        (folder / "source" / "t.csv").write_text("id;v\n" + "\n".join(rows) + "\n")
        lake_module._manifest_cache.clear()
        before = len(count) if count is not None else 0
        report = run_once(load_config(config))
        if report.tables[0].status not in ("full_load", "changes"):
            raise SystemExit(f"run {run}: {report.tables[0].status} {report.tables[0].error}")
        per_run.append(len(count) - before if count is not None else 0)
    return per_run


def s3_requests(runs: int) -> dict[int, int]:
    import boto3
    from moto.server import ThreadedMotoServer

    from cdc_core import s3lake

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": f"http://{host}:{port}"})
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="bench")
    made: list[str] = []
    original = s3lake.s3_client

    def counted(config):
        client = original(config)
        client.meta.events.register("before-send.s3", lambda request, **_: made.append(request.method))
        return client

    s3lake.s3_client = counted
    try:
        with tempfile.TemporaryDirectory() as tmp:
            per_run = capture_runs(Path(tmp), runs, "s3://bench/log", 100, made)
    finally:
        s3lake.s3_client = original
        server.stop()
    return {i + 1: n for i, n in enumerate(per_run)}


def replay_seconds(runs: int, checkpoint_every: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        capture_runs(Path(tmp), runs, "lake", checkpoint_every)
        code = ("import sys, time; from pathlib import Path; from cdc_core.lake import LocalLake; "
                "from cdc_core.replay import replay; t = time.perf_counter(); "
                f"replay(LocalLake(Path({tmp!r}) / 'lake'), 't', Path({tmp!r}) / 'out.parquet'); "
                "print(time.perf_counter() - t)")
        times = [float(subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                                      check=True).stdout) for _ in range(3)]
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    args = parser.parse_args()
    clock = time.perf_counter()
    requests = s3_requests(args.runs)
    with_checkpoints, without = replay_seconds(args.runs, 100), replay_seconds(args.runs, 10**9)
    shown = sorted({r for r in (2, 10, 100, 101, 500, args.runs) if r <= args.runs})
    print(f"S3 requests per capture ({args.runs} runs; run 1 is the first full load, a checkpoint every 100 runs)")
    print("| run | " + " | ".join(str(r) for r in shown) + " | median of all |")
    print("|---|" + "---:|" * (len(shown) + 1))
    print("| requests | " + " | ".join(str(requests[r]) for r in shown) +
          f" | {statistics.median(requests.values()):.0f} |")
    print(f"\nreplay of the head at run {args.runs}: {with_checkpoints:.2f} s with checkpoint_every 100, "
          f"{without:.2f} s without checkpoints (median of 3, fresh processes)")
    result = {"runs": args.runs, "requests_per_run": requests, "replay_seconds_checkpoints_100": with_checkpoints,
              "replay_seconds_no_checkpoints": without, "load_average": os.getloadavg()[0],
              "seconds": round(time.perf_counter() - clock, 1)}
    (ROOT / "bench" / f"results-log-{args.runs}.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
