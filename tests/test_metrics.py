"""Prometheus metrics: the textfile after real `--once` runs (read with prometheus_client's parser), and `/metrics`
scraped over HTTP from the running timed loop."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cdc_core.config import parse_config
from cdc_core.errors import ConfigError
from cdc_core.outcome import load_outcome

from .conftest import DEMO_TABLES, ROOT, run_cli, write_config

DATA = Path(__file__).parent / "data"
TABLES = [t["name"] for t in DEMO_TABLES]
Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def parse(text: str) -> Samples:
    """{sample name: {sorted labels: value}} of a Prometheus text exposition."""
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def textfile(folder: Path) -> Samples:
    return parse((folder / "data" / "metrics" / "cdc_core.prom").read_text())


def per_table(samples: Samples, name: str) -> dict[str, float]:
    return {dict(labels)["table"]: value for labels, value in samples.get(name, {}).items()}


def changes(samples: Samples, name: str = "cdc_last_run_changes") -> dict[str, dict[str, int]]:
    found: dict[str, dict[str, int]] = {}
    for labels, value in samples[name].items():
        labels = dict(labels)
        found.setdefault(labels["table"], {})[labels["op"]] = int(value)
    return found


def lake_ops(lake: Path, table: str, run_id: str) -> dict[str, int]:
    path = lake / "cdc" / table / f"{table}_{run_id}.parquet"
    ops = pq.read_table(path).column("op").to_pylist() if path.exists() else []
    return {op: ops.count(op) for op in "IUD"}


def state(folder: Path, table: str) -> dict:
    return json.loads((folder / "data" / "state" / f"{table}.json").read_text())


def run_id_of(out: str) -> str:
    return out.split()[1]


def test_every_once_writes_the_textfile_from_the_cycle_the_lake_and_the_state(demo_config: Path):
    folder, lake = demo_config.parent, demo_config.parent / "lake"
    assert run_cli("--once", "--config", str(demo_config)).code == 0
    before = datetime.now(UTC).replace(microsecond=0).timestamp()
    second = run_cli("--once", "--config", str(demo_config))
    after = time.time()
    assert second.code == 0, second.err
    run_2 = run_id_of(second.out)
    metrics = textfile(folder)

    assert os.listdir(folder / "data" / "metrics") == ["cdc_core.prom"]  # written to a temporary file, renamed
    assert metrics["cdc_info"] == {(("lake", str(lake)), ("source", "demo (seed 7, scale 0.2)"),
                                    ("version", "0.1.0")): 1.0}
    [cycle_end] = metrics["cdc_cycle_timestamp_seconds"].values()
    [duration] = metrics["cdc_cycle_duration_seconds"].values()
    assert before <= cycle_end <= after and 0 < duration <= after - before + 1
    assert duration == load_outcome(folder / "data")["cycle"]["seconds"]  # measured, not whole-second times apart
    assert per_table(metrics, "cdc_table_rows") == {
        t: pq.ParquetFile(lake / "full-load" / t / f"{t}.parquet").metadata.num_rows for t in TABLES}
    assert changes(metrics) == {t: lake_ops(lake, t, run_2) for t in TABLES}
    assert changes(metrics, "cdc_changes_total") == changes(metrics)  # the first run's full loads are no changes
    assert per_table(metrics, "cdc_last_success_timestamp_seconds") == {t: cycle_end for t in TABLES}
    assert per_table(metrics, "cdc_last_commit_timestamp_seconds") == {
        t: datetime.strptime(state(folder, t)["committed_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
        for t in TABLES}
    for name in ("cdc_outbox_pending", "cdc_table_failed", "cdc_table_held"):
        assert per_table(metrics, name) == dict.fromkeys(TABLES, 0), name

    # a run of one table keeps what the others' last runs said
    while time.time() < cycle_end + 1:  # times have whole seconds: let the next run's differ
        time.sleep(0.05)
    third = run_cli("--once", "--config", str(demo_config), "--tables", "produtos", "--skip-download")
    assert third.code == 0, third.err
    again = textfile(folder)
    assert changes(again)["clientes"] == changes(metrics)["clientes"] and changes(again)["produtos"] == dict.fromkeys(
        "IUD", 0)
    assert changes(again, "cdc_changes_total") == changes(metrics, "cdc_changes_total")
    success = per_table(again, "cdc_last_success_timestamp_seconds")
    assert success["clientes"] == cycle_end < success["produtos"] == again["cdc_cycle_timestamp_seconds"][()]


def test_a_failed_table_and_a_run_stuck_in_the_outbox_show_in_the_metrics(tmp_path: Path):
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(DATA / "clientes_20250918.csv", source / "clientes.csv")
    shutil.copy(DATA / "produtos_41.csv", source / "produtos.csv")
    tables = [{"name": "clientes", "pk": "idCliente", "date_field": "DtAtualizacao", "sep": ";"},
              {"name": "produtos", "pk": "IdProduto", "sep": ";"}]
    config = write_config(tmp_path, source={"type": "directory", "path": "source"}, tables=tables)
    assert run_cli("--once", "--config", str(config)).code == 0
    first_success = per_table(textfile(tmp_path), "cdc_last_success_timestamp_seconds")["clientes"]
    while time.time() < first_success + 1:  # times have whole seconds: let the next run's differ
        time.sleep(0.05)

    clientes = source / "clientes.csv"
    with open(clientes, "a") as f:
        f.write(clientes.read_text().splitlines()[1] + "\n")  # a duplicate key
    assert run_cli("--once", "--config", str(config)).code == 1
    metrics = textfile(tmp_path)
    assert per_table(metrics, "cdc_table_failed") == {"clientes": 1, "produtos": 0}
    assert per_table(metrics, "cdc_last_success_timestamp_seconds")["clientes"] == first_success
    assert per_table(metrics, "cdc_last_run_timestamp_seconds")["clientes"] > first_success

    shutil.copy(DATA / "clientes_20250922.csv", clientes)
    (tmp_path / "lake" / "cdc").write_text("not a folder")  # the lake refuses the CDC file: the run stays pending
    stuck = run_cli("--once", "--config", str(config))
    assert stuck.code == 1 and "stays in the outbox" in stuck.out and "Cannot write cdc/clientes/" in stuck.out
    metrics = textfile(tmp_path)
    assert per_table(metrics, "cdc_outbox_pending") == {"clientes": 1, "produtos": 0}
    assert per_table(metrics, "cdc_table_failed") == {"clientes": 1, "produtos": 0}
    found = changes(metrics)["clientes"]
    assert found["I"] > 0 and changes(metrics, "cdc_changes_total")["clientes"] == dict.fromkeys("IUD", 0)

    (tmp_path / "lake" / "cdc").unlink()
    assert run_cli("--once", "--config", str(config)).code == 0
    metrics = textfile(tmp_path)
    assert per_table(metrics, "cdc_outbox_pending") == {"clientes": 0, "produtos": 0}
    assert per_table(metrics, "cdc_table_failed") == {"clientes": 0, "produtos": 0}
    assert changes(metrics, "cdc_changes_total")["clientes"] == found == lake_ops(
        tmp_path / "lake", "clientes", state(tmp_path, "clientes")["run_id"])
    assert per_table(metrics, "cdc_table_rows")["clientes"] == 3864


def test_a_dry_run_or_textfile_false_writes_no_metrics(tmp_path: Path):
    config = write_config(tmp_path)
    assert run_cli("--dry-run", "--config", str(config)).code == 0
    assert not (tmp_path / "data" / "metrics").exists()
    write_config(tmp_path, metrics={"textfile": False})
    assert run_cli("--once", "--config", str(config)).code == 0
    assert not (tmp_path / "data" / "metrics").exists()


@pytest.mark.parametrize(("metrics", "message"), [
    ({"prot": 9108}, 'Unknown config key "metrics.prot" — remove it or fix its name (did you mean "port"?)'),
    ({"port": "9108"}, 'Config key "metrics.port" is \'9108\' — use a TCP port number like 9108'),
    ({"port": 70000}, 'Config key "metrics.port" is 70000'),
    ({"port": 9108, "host": ""}, 'Config key "metrics.host" is \'\''),
    ({"textfile": "yes"}, 'Config key "metrics.textfile" is \'yes\' — use true or false'),
    ([9108], 'Config key "metrics" must be an object like {"port": 9108}'),
])
def test_bad_metrics_config_says_what_to_fix(tmp_path: Path, metrics, message: str):
    raw = json.loads(write_config(tmp_path, metrics=metrics).read_text())
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, base_dir=tmp_path)
    assert message in str(caught.value)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> Samples | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return parse(response.read().decode())
    except OSError:
        return None


def start_loop(config: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "cdc_core", "--config", str(config), "-q"], cwd=config.parent,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, process: subprocess.Popen, what: str, limit: float = 120):
    deadline = time.monotonic() + limit
    while (value := condition()) is None:
        assert process.poll() is None, f"the loop exited early: {process.communicate()}"
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.2)
    return value


def test_the_timed_loop_serves_the_same_metrics_after_each_cycle_and_stops_on_sigterm(tmp_path: Path):
    port = free_port()
    config = write_config(tmp_path, timer={"unit": "seconds", "value": 2}, metrics={"port": port})
    loop = start_loop(config)
    try:
        def cycle_seen(after: float = 0.0):
            samples = scrape(port)
            if samples and samples.get("cdc_cycle_timestamp_seconds", {}).get((), 0) > after:
                return samples
            return None

        first = wait_for(cycle_seen, loop, "the first cycle on /metrics")
        second = wait_for(lambda: cycle_seen(first["cdc_cycle_timestamp_seconds"][()]), loop, "a second cycle")
        assert per_table(second, "cdc_table_rows").keys() == set(TABLES)
        assert any(any(ops.values()) for ops in changes(second).values())  # the demo moved on: changes

        def same_as_textfile():  # the file and the endpoint hold the same values (retry if a cycle ends between)
            before, served, after = textfile(tmp_path), scrape(port), textfile(tmp_path)
            return served if before == after == served else None

        wait_for(same_as_textfile, loop, "/metrics to equal the textfile")
    finally:
        loop.send_signal(signal.SIGTERM)
        _, err = loop.communicate(timeout=120)
    assert loop.returncode == 0, err
    assert scrape(port) is None  # the endpoint went away with the loop


def test_a_metrics_port_in_use_stops_the_loop_at_start(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path, metrics={"port": port})
        result = run_cli("--config", str(config))
    assert result.code == 2
    assert f"Cannot serve metrics on 127.0.0.1:{port}" in result.err and '"metrics.port"' in result.err
    assert not (tmp_path / "lake").exists()
