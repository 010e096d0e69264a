"""Whole captures through the CLI on a multi-process Spark (local-cluster) and on Spark Connect, and a lake that
switches engines between runs: each lake equals the one the DuckDB engine makes from the same source versions,
and verifies."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from .conftest import run_cli, write_config
from .spark_parity import schema

pytest.importorskip("pyspark")
# JVMs on a 2-core machine: the worker that runs the other Spark tests runs these too, one after another
pytestmark = pytest.mark.xdist_group("spark")
STAMPS = ("_cdc_run_id", "_cdc_captured_at")
CLUSTER = {"type": "spark", "master": "local-cluster[2,1,1024]",
           "conf": {"spark.driver.memory": "768m", "spark.sql.shuffle.partitions": "4"}}


def lake_view(folder: Path) -> dict:
    """What a reader of the lake gets, minus run ids and times: per table its full load and each CDC file's rows
    (in order), each manifest's columns, layouts and counts."""
    lake, view = folder / "lake", {}
    for manifest in sorted((lake / "manifests").rglob("*.json")):
        meta = json.loads(manifest.read_text())
        view.setdefault(meta["table"], []).append({k: meta.get(k) for k in ("columns", "layouts", "counts", "kind")})
    for cdc in sorted((lake / "cdc").rglob("*.parquet")):
        table = pq.read_table(cdc)
        view[cdc.parent.name].append(table.drop_columns(list(STAMPS)).to_pylist())
    for full in sorted((lake / "full-load").rglob("*.parquet")):
        view[full.parent.name].append(sorted(pq.read_table(full).to_pylist(), key=repr))
    return view


def capture(folder: Path, engine: dict | None, runs: int = 1) -> None:
    config = write_config(folder, **({"engine": engine} if engine else {}))
    for _ in range(runs):
        result = run_cli("--once", "--config", str(config), timeout=600)
        assert result.code == 0, result.out + result.err


def verify(folder: Path, engine: dict | None = None) -> None:
    config = write_config(folder, **({"engine": engine} if engine else {}))
    result = run_cli("verify", "--config", str(config), timeout=600)
    assert result.code == 0 and "4 of 4 table(s) verified" in result.out, result.out + result.err


@pytest.fixture(scope="module")
def duckdb_lakes(tmp_path_factory) -> dict[int, dict]:
    """The lake after two and after three captures of the demo source with the DuckDB engine: the lakes every
    other engine must make."""
    folder = tmp_path_factory.mktemp("duckdb")
    capture(folder, None, runs=2)
    after_two = lake_view(folder)
    capture(folder, None)
    return {2: after_two, 3: lake_view(folder)}


def test_a_lake_switched_duckdb_spark_duckdb_equals_the_duckdb_lake_and_verifies(tmp_path: Path, duckdb_lakes):
    capture(tmp_path, None)  # full load on DuckDB
    capture(tmp_path, CLUSTER)  # changes on Spark: a driver and two executor JVMs
    capture(tmp_path, None)  # and on DuckDB again, diffing against Spark's snapshot
    assert lake_view(tmp_path) == duckdb_lakes[3]
    verify(tmp_path)


@pytest.fixture
def connect_server(tmp_path: Path):
    """A Spark Connect server (the wheel's sbin/start-connect-server.sh, in the foreground) on 127.0.0.1."""
    import pyspark

    home = Path(pyspark.__file__).parent
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(tmp_path),
           "SPARK_PID_DIR": str(tmp_path), "PYSPARK_PYTHON": sys.executable}
    server = subprocess.Popen(
        ["bash", str(home / "sbin" / "start-connect-server.sh"), "--wait", "--master", "local[2]",
         "--conf", f"spark.connect.grpc.binding.port={port}", "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
         "--conf", "spark.ui.enabled=false", "--conf", "spark.driver.memory=768m"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, "the Spark Connect server stopped"
                assert time.monotonic() < deadline, "the Spark Connect server did not start in 120 s"
                time.sleep(0.5)
        yield f"sc://127.0.0.1:{port}"
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=60)


def test_spark_connect_captures_the_duckdb_lake_and_verifies(tmp_path: Path, duckdb_lakes, connect_server):
    engine = {"type": "spark", "remote": connect_server}
    capture(tmp_path, engine, runs=2)  # a full load and a run of changes, each table's snapshot, diff and commit
    assert lake_view(tmp_path) == duckdb_lakes[2]
    verify(tmp_path, engine)  # replay on the Connect server too


def test_the_diff_command_on_spark_prints_and_writes_what_duckdb_does(tmp_path: Path):
    data = Path(__file__).parent / "data"
    args = [str(data / "clientes_20250918.csv"), str(data / "clientes_20250922.csv"), "--key", "idCliente",
            "--sep", ";", "--date-field", "DtAtualizacao", "--stat", "--changed-columns"]
    duck = run_cli("diff", *args, "--output", str(tmp_path / "duckdb.parquet"))
    spark = run_cli("diff", *args, "--engine", "spark", "--output", str(tmp_path / "spark.parquet"), timeout=600)
    assert spark.code == duck.code == 0, spark.err
    assert spark.out.replace("spark.parquet", "X") == duck.out.replace("duckdb.parquet", "X")
    assert "I 27  U 138  D 0" in spark.out
    written = {name: tmp_path / f"{name}.parquet" for name in ("spark", "duckdb")}
    assert schema(written["spark"]) == schema(written["duckdb"])
    assert pq.read_table(written["spark"]).to_pylist() == pq.read_table(written["duckdb"]).to_pylist()
