"""Nothing lost, nothing duplicated: kills at every step, a lake outage, the lock, replay and verify."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from cdc_core.config import TableConfig, load_config
from cdc_core.engines.duckdb.diff import diff
from cdc_core.engines.duckdb.snapshot import load_snapshot
from cdc_core.sources.demo import DemoSource
from cdc_core.state import State

from .conftest import DEMO_TABLES, ROOT, run_cli, write_config

# real processes racing on timing (pauses, signals, kills at random moments): one worker runs them all, one
# after another, while the other workers run the rest
pytestmark = pytest.mark.xdist_group("timing")

KEYS = {t["name"]: t["pk"] for t in DEMO_TABLES}
SEED, SCALE = 7, 0.05

CRASHES = (
    ["clientes:after_put_base", "after_fetch", "after_fetch_swap"]
    + [f"{table}:{point}" for table in ("clientes", "transacoes") for point in (
        "after_snapshot", "after_diff", "after_stage", "after_put_cdc", "after_put_full", "after_put_manifest",
        "commit_after_snapshot_move", "commit_after_state", "commit_after_sent")]
    + ["transacao_produto:after_put_cdc", "transacao_produto:commit_after_state"]
)


def manifests(lake: Path, table: str) -> list[dict]:
    return sorted((json.loads(p.read_text()) for p in (lake / "manifests" / table).glob("*.json")),
                  key=lambda m: m["run_id"])


def demo_changes(table: str, old: int, new: int) -> set[tuple[str, str]]:
    """(op, key) of every real change between two demo versions, by set logic on the generator's rows."""
    demo, key = DemoSource(seed=SEED, scale=SCALE), KEYS[table]
    a = demo.table(table, old).to_pandas().set_index(key)
    b = demo.table(table, new).to_pandas().set_index(key)
    both = a.index.intersection(b.index)
    changed = both[(a.loc[both].fillna("") != b.loc[both].fillna("")).any(axis=1)]
    return ({("I", k) for k in b.index.difference(a.index)} | {("D", k) for k in a.index.difference(b.index)}
            | {("U", k) for k in changed})


def test_killed_at_any_step_the_lake_stays_exact_and_every_change_lands_once(tmp_path: Path):
    config = write_config(tmp_path, source={"type": "demo", "seed": SEED, "scale": SCALE}, retention=2)
    lake = tmp_path / "lake"
    for fault in CRASHES:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "CDC_FAULT": fault}
        killed = subprocess.run([sys.executable, "-m", "cdc_core", "--once", "-q", "--config", str(config)],
                                env=env, capture_output=True, text=True, timeout=120, check=False)
        assert killed.returncode == -signal.SIGKILL, f"{fault} was never reached: {killed.stdout}{killed.stderr}"
        rerun = run_cli("--once", "-q", "--config", str(config))
        assert rerun.code == 0, f"after {fault}: {rerun.out}{rerun.err}"

    assert run_cli("verify", "--config", str(config)).code == 0
    for table in KEYS:
        runs = manifests(lake, table)
        assert len(runs) >= 5
        listed = {f["key"] for m in runs for f in m["files"] if f["key"].startswith("cdc/")}
        on_disk = {p.relative_to(lake).as_posix() for p in (lake / "cdc" / table).glob("*.parquet")}
        assert on_disk == listed, f"{table}: CDC files without a manifest (a duplicate or a half-published run)"
        for old, new in itertools.pairwise(runs):
            expected = demo_changes(table, int(old["source_version"]), int(new["source_version"]))
            got = set()
            if new["has_changes"]:
                rows = pd.read_parquet(lake / "cdc" / table / f"{table}_{new['run_id']}.parquet")
                got = set(zip(rows.op, rows[KEYS[table]]))
                assert len(got) == len(rows), f"{table} run {new['run_id']}: a change appears twice"
            assert got == expected, f"{table}: versions {old['source_version']} → {new['source_version']}"


def test_an_outage_keeps_the_outbox_and_the_next_cycle_publishes_both_in_order(tmp_path: Path):
    config = write_config(tmp_path, retention=1)
    lake = tmp_path / "lake"
    assert run_cli("--once", "--config", str(config)).code == 0
    (lake / "cdc").write_text("the lake is down")  # every CDC upload fails
    down = run_cli("--once", "--config", str(config))
    assert down.code == 1 and "Cannot write cdc/clientes/" in down.out
    pending = sorted(p.name for p in (tmp_path / "data" / "outbox" / "clientes").glob("2*"))
    assert len(pending) == 1

    (lake / "cdc").unlink()
    up = run_cli("--once", "--config", str(config))
    assert up.code == 0, up.out
    runs = [m["run_id"] for m in manifests(lake, "clientes")]
    assert runs[1] == pending[0] and len(runs) == 3
    assert sorted(p.stem.split("_", 1)[1] for p in (lake / "cdc" / "clientes").glob("*.parquet")) == runs[1:]
    assert run_cli("verify", "--config", str(config)).code == 0
    assert not list((tmp_path / "data" / "outbox" / "clientes").glob("2*"))


def test_a_second_run_is_refused_while_one_holds_the_lock_and_a_dead_ones_lock_is_not(tmp_path: Path):
    config = write_config(tmp_path)
    data = tmp_path / "data"
    holder = subprocess.Popen(  # another process takes the lock, then is killed as a power cut would kill it
        [sys.executable, "-c", ("import sys, time; from cdc_core.state import State\n"
         "with State(sys.argv[1]).lock():\n    print('held', flush=True); time.sleep(600)"), str(data)],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        blocked = run_cli("--once", "--config", str(config))
        assert blocked.code == 1
        assert "Another capture is running on" in blocked.err and f"pid {holder.pid}" in blocked.err
        assert not (tmp_path / "lake").exists()
    finally:
        holder.kill()
        holder.wait()
    assert run_cli("--once", "--config", str(config)).code == 0


def test_replay_as_of_each_run_gives_that_runs_snapshot(tmp_path: Path):
    config = write_config(tmp_path, source={"type": "demo", "seed": SEED, "scale": SCALE})
    for _ in range(3):
        assert run_cli("--once", "-q", "--config", str(config)).code == 0
    runs = manifests(tmp_path / "lake", "clientes")
    table = TableConfig("clientes", ("idCliente",), "DtAtualizacao", ";")
    for version, run in enumerate(runs, start=1):
        out = tmp_path / f"replayed_{version}.parquet"
        result = run_cli("replay", "--config", str(config), "--table", "clientes", "--as-of", run["run_id"],
                         "--output", str(out))
        assert result.code == 0, result.err
        assert f"clientes as of run {run['run_id']}: {run['rows']:,} rows" in result.out
        csv = tmp_path / f"v{version}.csv"
        DemoSource(seed=SEED, scale=SCALE).write("clientes", version, csv)
        expected = load_snapshot(csv, table, tmp_path / f"v{version}.parquet")
        changes = diff(expected.path, out, "idCliente")
        assert changes.total == 0 and not changes.schema_changed
    too_early = run_cli("replay", "--config", str(config), "--table", "clientes", "--as-of", "20000101_000000",
                        "--output", str(tmp_path / "x.parquet"))
    assert too_early.code == 1 and "has no capture at or before run 20000101_000000" in too_early.err


def test_verify_reports_the_keys_where_the_lake_and_the_state_disagree(tmp_path: Path):
    config = write_config(tmp_path, source={"type": "demo", "seed": SEED, "scale": SCALE})
    for _ in range(2):
        assert run_cli("--once", "-q", "--config", str(config)).code == 0
    cdc = next((tmp_path / "lake" / "cdc" / "clientes").glob("*.parquet"))
    rows = pd.read_parquet(cdc)
    rows.iloc[1:].to_parquet(cdc)  # a change went missing from the lake
    result = run_cli("verify", "--config", str(config))
    assert result.code == 1
    assert "clientes" in result.out and "does not match its manifest's checksum" in result.out
    assert "replaying the lake differs from the committed snapshot: 1 row(s)" in result.out
    assert str(rows[KEYS["clientes"]].iloc[0]) in result.out
    assert "1 of 4 table(s) do not match" in result.out


def test_the_timed_loop_runs_cycles_until_sigterm_then_exits_0(tmp_path: Path):
    config = write_config(tmp_path, source={"type": "demo", "seed": SEED, "scale": SCALE},
                          timer={"unit": "seconds", "value": 1})
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "cdc_core", "-q", "--config", str(config)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(manifests(tmp_path / "lake", "clientes")) < 2:
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert out.count("\nrun ") + out.startswith("run ") >= 2
    assert len(manifests(tmp_path / "lake", "clientes")) >= 2


def test_loop_ticks_do_not_drift_and_an_error_waits_for_the_next_tick(tmp_path: Path, caplog):
    import threading

    from cdc_core.schedule import next_tick, run_forever

    assert next_tick(100.0, 10.0, 100.0) == 110.0
    assert next_tick(100.0, 10.0, 125.3) == 130.0  # a slow cycle skips to the next tick, not start + 10 + 25.3
    config = load_config(write_config(tmp_path, timer={"unit": "seconds", "value": 0.2}))
    stop = threading.Event()
    with State(config.data_dir).lock():  # every cycle fails: another run holds the lock
        thread = threading.Thread(target=run_forever, args=(config,), kwargs={"stop": stop})
        thread.start()
        time.sleep(1.0)
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    failures = [r for r in caplog.records if "the next tick tries again" in r.getMessage()]
    assert len(failures) >= 3


@pytest.mark.parametrize("keep", [1, 3])
def test_retention_keeps_the_committed_snapshot_and_never_unpublished_files(tmp_path: Path, keep: int):
    config = write_config(tmp_path, source={"type": "demo", "seed": SEED, "scale": SCALE}, retention=keep)
    for _ in range(5):
        assert run_cli("--once", "-q", "--config", str(config)).code == 0
    data = tmp_path / "data"
    snapshots = sorted((data / "snapshots" / "clientes").glob("*.parquet"))
    assert len(snapshots) == keep
    committed = json.loads((data / "state" / "clientes.json").read_text())
    assert (data / committed["snapshot"]) == snapshots[-1]
    assert len(list((data / "sent" / "clientes").iterdir())) == keep
    assert len(list((tmp_path / "lake" / "cdc" / "clientes").glob("*.parquet"))) == 4  # the lake keeps all


def test_a_dry_run_with_a_pending_run_previews_what_the_real_run_then_writes(tmp_path: Path):
    config = write_config(tmp_path, source={"type": "demo", "seed": SEED, "scale": SCALE})
    lake = tmp_path / "lake"
    assert run_cli("--once", "-q", "--config", str(config)).code == 0
    (lake / "cdc").write_text("the lake is down")
    assert run_cli("--once", "-q", "--config", str(config)).code == 1  # run 2 waits in the outbox
    (lake / "cdc").unlink()
    preview = run_cli("--dry-run", "--config", str(config))
    real = run_cli("--once", "--config", str(config))
    assert preview.code == real.code == 0

    def counts(out: str) -> list[tuple[str, ...]]:
        return re.findall(r"(clientes)\s+changes\s+I\s+(\d+)\s+U\s+(\d+)\s+D\s+(\d+)", out)

    assert counts(preview.out) == counts(real.out) != []
    planned = re.findall(r"would upload (cdc/clientes/\S+)", preview.out)
    written = sorted(p.relative_to(lake).as_posix() for p in (lake / "cdc" / "clientes").glob("*.parquet"))
    assert len(planned) == len(written) == 2 and planned[0] == written[0]  # the pending run, then the new one
