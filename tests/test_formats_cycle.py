"""Delta and Iceberg tables kept by the real cycle (the CLI): after every run the format table is the full load,
its version is in the manifest, time travel to each run gives `replay --as-of`, and a run killed anywhere in its
commit is applied exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cdc_core import load_config
from cdc_core.formats import make_format
from cdc_core.lake import LocalLake, read_manifests

from .conftest import ROOT, run_cli, write_config
from .format_runs import assert_same, moto_endpoint, s3_lake  # noqa: F401  (fixtures)

SMALL = {"type": "demo", "seed": 3, "scale": 0.05}
TABLES = [{"name": "clientes", "pk": "idCliente", "date_field": "DtAtualizacao", "sep": ";"},
          {"name": "transacao_produto", "pk": "idTransacaoProduto", "sep": ";"}]


def delta_cdf_counts(path: Path, version: int) -> dict[str, int]:
    from deltalake import DeltaTable

    cdf = pa.table(DeltaTable(str(path)).load_cdf(starting_version=version, ending_version=version))
    kinds = cdf.column("_change_type").cast(pa.string()).to_pylist()
    return {"I": kinds.count("insert"), "U": kinds.count("update_postimage"), "D": kinds.count("delete")}


@pytest.mark.parametrize("table_format", ["delta", "iceberg"])
def test_every_run_keeps_the_format_table_equal_to_the_lake(tmp_path: Path, table_format: str):
    config_path = write_config(tmp_path, source=SMALL, tables=TABLES, table_format=table_format)
    config = load_config(config_path)
    lake = LocalLake(tmp_path / "lake")
    for version in range(1, 15):  # transacao_produto.IdProduto widens from numbers to text at version 14
        result = run_cli("--once", "-q", "--config", str(config_path))
        assert result.code == 0, result.out + result.err
        fmt = make_format(config.table_format, config.lake)
        for table in TABLES:
            name, key = table["name"], (table["pk"],)
            full = pq.read_table(tmp_path / "lake/full-load" / name / f"{name}.parquet")
            assert_same(fmt.current(name), full, key, f"{name} after version {version}")
            manifest = read_manifests(lake, name)[-1]
            if manifest["kind"] == "full_load" or manifest["has_changes"]:
                assert manifest["table_format"]["name"] == table_format
    assert run_cli("verify", "--config", str(config_path)).code == 0
    fmt = make_format(config.table_format, config.lake)
    feeds = 0
    for table in TABLES:
        name, key = table["name"], (table["pk"],)
        runs = read_manifests(lake, name)
        assert any("widened" in w for m in runs for w in m["warnings"]) == (name == "transacao_produto")
        for manifest in runs[:: max(1, len(runs) // 4)]:
            out = tmp_path / f"{name}_{manifest['run_id']}.parquet"
            assert run_cli("replay", "--config", str(config_path), "--table", name, "--as-of", manifest["run_id"],
                           "--output", str(out)).code == 0
            if manifest["kind"] == "full_load" or manifest["has_changes"]:
                assert_same(fmt.as_of(name, manifest["run_id"]), pq.read_table(out), key, manifest["run_id"])
            if table_format == "delta" and manifest["kind"] == "changes" and manifest["has_changes"] and \
                    not any("changed type" in w or "widened" in w or "removed" in w for w in manifest["warnings"]):
                assert delta_cdf_counts(tmp_path / "lake/delta" / name, manifest["table_format"]["version"]) == \
                    manifest["counts"]
                feeds += 1
    assert feeds >= 4 if table_format == "delta" else feeds == 0


@pytest.mark.parametrize("fault", ["after_claim", "after_format", "after_link", "after_put_manifest"])
def test_a_run_killed_in_its_commit_is_applied_to_delta_exactly_once(tmp_path: Path, fault: str):
    from deltalake import DeltaTable

    config_path = write_config(tmp_path, source=SMALL, tables=TABLES[:1], table_format="delta")
    for _ in range(2):
        assert run_cli("--once", "-q", "--config", str(config_path)).code == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CDC_FAULT": f"clientes:{fault}"}
    killed = subprocess.run([sys.executable, "-m", "cdc_core", "--once", "-q", "--config", str(config_path)],
                            env=env, capture_output=True, timeout=120, check=False)
    assert killed.returncode == -signal.SIGKILL
    assert run_cli("--once", "-q", "--config", str(config_path)).code == 0
    assert run_cli("verify", "--config", str(config_path)).code == 0
    runs = read_manifests(LocalLake(tmp_path / "lake"), "clientes")
    history = DeltaTable(str(tmp_path / "lake/delta/clientes")).history()
    applied = [h.get("cdc.run_id") for h in history if h.get("cdc.run_id")]
    assert sorted(applied) == [m["run_id"] for m in runs]  # each run once, none twice, none missing


def test_delta_on_an_s3_lake(tmp_path: Path, s3_lake: str):  # noqa: F811
    config_path = write_config(tmp_path, source=SMALL, tables=TABLES[:1], table_format="delta", lake=s3_lake)
    for _ in range(3):
        result = run_cli("--once", "-q", "--config", str(config_path))
        assert result.code == 0, result.out + result.err
    checked = run_cli("verify", "--config", str(config_path))
    assert checked.code == 0, checked.out
    config = load_config(config_path)
    from cdc_core.lake import make_lake

    runs = read_manifests(make_lake(config.lake), "clientes")
    assert [m["table_format"]["version"] for m in runs] == [0, 1, 2]


def test_a_missing_format_library_is_one_line(tmp_path: Path):
    config_path = write_config(tmp_path, table_format="delta")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'hide'}:{ROOT}"}
    (tmp_path / "hide" / "deltalake").mkdir(parents=True)
    (tmp_path / "hide" / "deltalake" / "__init__.py").write_text("raise ImportError('not installed here')\n")
    proc = subprocess.run([sys.executable, "-m", "cdc_core", "--once", "--config", str(config_path)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2
    assert proc.stderr == "Error: the Delta table format needs deltalake: pip install 'cdc-core[delta]'\n"
