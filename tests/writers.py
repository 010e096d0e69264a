"""Two writers on one lake, as real processes: configs of their own on a shared lake and source folder, stalled
(`CDC_PAUSE` until the test lets them go on), killed (`CDC_FAULT`) or stopped with signals; what they leave in the lake, read back."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq

from cdc_core import load_config
from cdc_core.config import TableConfig
from cdc_core.engines import schema_of
from cdc_core.engines.duckdb.diff import diff
from cdc_core.engines.duckdb.snapshot import load_snapshot
from cdc_core.lake import make_lake
from cdc_core.sources.demo import DemoSource

from .conftest import ROOT, write_config

CLIENTES = {"name": "clientes", "pk": "idCliente", "date_field": "DtAtualizacao", "sep": ";"}
TABLE = TableConfig("clientes", ("idCliente",), "DtAtualizacao", ";")


def writer(tmp_path: Path, name: str, lake: str, **overrides) -> Path:
    """A config of its own (its own data dir) on the shared lake and the shared source folder."""
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    (tmp_path / "source").mkdir(exist_ok=True)
    return write_config(folder, source={"type": "directory", "path": str(tmp_path / "source")}, lake=lake,
                        tables=[CLIENTES], **overrides)


def publish_version(tmp_path: Path, text: str) -> None:
    (tmp_path / "source" / "clientes.csv").write_text(text)


def changes_between(tmp_path: Path, old: str, new: str) -> set[tuple[str, str]]:
    """(op, key) of an independent diff of two CSV versions."""
    (tmp_path / "old.csv").write_text(old)
    (tmp_path / "new.csv").write_text(new)
    a = load_snapshot(tmp_path / "old.csv", TABLE, tmp_path / "old.parquet")
    b = load_snapshot(tmp_path / "new.csv", TABLE, tmp_path / "new.parquet", previous=schema_of(a.path))
    rows = diff(a.path, b.path, "idCliente", date_field="DtAtualizacao").rows
    return set(zip(rows.column("op").to_pylist(), rows.column("idCliente").to_pylist(), strict=True))


def lake_objects(config: Path) -> dict[str, bytes]:
    """Every object under manifests/, cdc/ and base/ with its bytes."""
    lake = make_lake(load_config(config).lake)
    return {key: lake.read(key) for prefix in ("manifests/", "cdc/", "base/") for key in lake.list(prefix)}


def cdc_rows(config: Path) -> list[tuple[str, str, str]]:
    """(run id, op, key) of every change row in the lake."""
    lake, found = make_lake(load_config(config).lake), []
    folder = config.parent / "read"
    for key in lake.list("cdc/clientes/"):
        table = pq.read_table(lake.local(key, folder))
        found += zip(table.column("_cdc_run_id").to_pylist(), table.column("op").to_pylist(),
                     table.column("idCliente").to_pylist(), strict=True)
    return found


def demo_version(version: int) -> str:
    path = Path(f"/tmp/cdc-demo-{os.getpid()}-{version}.csv")
    DemoSource(seed=5, scale=0.1).write("clientes", version, path)
    text = path.read_text()
    path.unlink()
    return text


def race(configs: list[Path]) -> list[subprocess.CompletedProcess]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-m", "cdc_core", "--once", "--config", str(c)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in configs]
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=120), *p.communicate()) for p in procs]


class Stalled(subprocess.Popen):
    """A `--once` of `config` that stalls at a fault point (`CDC_PAUSE`) until `finish()` lets it go on."""

    def __init__(self, config: Path, point: str, until: Callable[[], bool]):
        self.resume = config.parent / f"resume-{point}"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "CDC_PAUSE": f"clientes:{point}:120",
               "CDC_RESUME": str(self.resume)}
        super().__init__([sys.executable, "-m", "cdc_core", "--once", "--config", str(config)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while not until() and time.monotonic() < deadline:  # it got there
            time.sleep(0.1)

    def finish(self) -> tuple[str, str]:
        """Let it go on (the other writer is done); its (stdout, stderr) once it exits."""
        self.resume.touch()
        return self.communicate(timeout=120)


def killed(config: Path, fault: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CDC_FAULT": f"clientes:{fault}"}
    return subprocess.run([sys.executable, "-m", "cdc_core", "--once", "-q", "--config", str(config)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def two_writers(tmp_path: Path, count: int, **overrides) -> tuple[str, Path, Path, list[str]]:
    """A shared local lake, writers "a" and "b" on it, `count` demo versions, the first captured by "a"."""
    from .conftest import run_cli

    lake = str(tmp_path / "lake")
    first, second = writer(tmp_path, "a", lake, **overrides), writer(tmp_path, "b", lake, **overrides)
    versions = [demo_version(v) for v in range(1, count + 1)]
    publish_version(tmp_path, versions[0])
    assert run_cli("--once", "--config", str(first)).code == 0
    return lake, first, second, versions
