"""Delta and Iceberg tables kept by the real cycle (the CLI): after every run the format table is the full load,
its version is in the manifest, time travel to each run gives `replay --as-of`, and a run killed anywhere in its
commit is applied exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cdc_core import load_config
from cdc_core.formats import FormatRun, make_format
from cdc_core.lake import LocalLake, read_manifests

from .conftest import ROOT, run_cli, write_config
from .format_runs import Chain, assert_same, format_for, moto_endpoint, s3_lake  # noqa: F401  (fixtures)

# real processes racing on timing (pauses, signals, kills at random moments): one worker runs them one after
# another, while the other runs the rest (the first timing group: the log, recovery and writers' tests)
pytestmark = pytest.mark.xdist_group("timing: stalls and formats")

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
                assert fmt.applied_version(name, manifest["run_id"]) is not None
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
                assert delta_cdf_counts(tmp_path / "lake/delta" / name,
                                        fmt.applied_version(name, manifest["run_id"])) == manifest["counts"]
                feeds += 1
    assert feeds >= 4 if table_format == "delta" else feeds == 0


@pytest.mark.parametrize("fault", ["after_stage", "after_link", "after_put_full", "after_format"])
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
    fmt = make_format(config.table_format, config.lake)
    assert [fmt.applied_version("clientes", m["run_id"]) for m in runs] == [0, 1, 2]


def test_a_missing_format_library_is_one_line(tmp_path: Path):
    config_path = write_config(tmp_path, table_format="delta")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'hide'}:{ROOT}"}
    (tmp_path / "hide" / "deltalake").mkdir(parents=True)
    (tmp_path / "hide" / "deltalake" / "__init__.py").write_text("raise ImportError('not installed here')\n")
    proc = subprocess.run([sys.executable, "-m", "cdc_core", "--once", "--config", str(config_path)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2
    assert proc.stderr == "Error: the Delta table format needs deltalake: pip install 'cdc-core[delta]'\n"


# --- a writer killed after applying its run to the format table, another writer taking over ----------------

CSV = "id;nome;cidade\n1;Ana;Recife\n2;Bia;Natal\n3;Caio;Salvador\n4;Duda;Belem\n"


def writer(tmp_path: Path, name: str, table_format: str) -> Path:
    """A writer with its own data dir on the shared local lake and source folder."""
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    (tmp_path / "source").mkdir(exist_ok=True)
    return write_config(folder, source={"type": "directory", "path": str(tmp_path / "source")},
                        lake=str(tmp_path / "lake"), tables=[{"name": "clientes", "pk": "id", "sep": ";"}],
                        table_format=table_format, lake_claim_timeout=1)


@pytest.mark.parametrize(("table_format", "behind"), [("delta", "killed"), ("iceberg", "stray"),
                                                    ("delta", "switched_off")])
def test_a_format_table_left_behind_is_brought_to_the_head_by_the_next_writer(
        tmp_path: Path, table_format: str, behind: str):
    """The format follows the log: a writer killed after the lake's commit (before its format commit), a table that
    holds a run the lake never committed (an older cdc_core), or runs made without "table_format" leave the table
    behind; the next cycle of any writer brings it to the head, never merging a run onto another parent."""
    source = tmp_path / "source" / "clientes.csv"
    first, other = writer(tmp_path, "a", table_format), writer(tmp_path, "b", table_format)
    source.parent.mkdir(exist_ok=True)
    source.write_text(CSV)
    assert run_cli("--once", "-q", "--config", str(first)).code == 0
    config = load_config(other)
    fmt = make_format(config.table_format, config.lake)
    source.write_text(CSV.replace("1;Ana;Recife", "1;Ana;Olinda"))
    if behind == "killed":
        env = {**os.environ, "PYTHONPATH": str(ROOT), "CDC_FAULT": "clientes:after_link"}
        killed = subprocess.run([sys.executable, "-m", "cdc_core", "--once", "-q", "--config", str(first)], env=env,
                                capture_output=True, timeout=120, check=False)
        assert killed.returncode == -signal.SIGKILL
    else:
        plain = write_config(tmp_path / "a", source={"type": "directory", "path": str(tmp_path / "source")},
                             lake=str(tmp_path / "lake"), tables=[{"name": "clientes", "pk": "id", "sep": ";"}])
        assert run_cli("--once", "-q", "--config", str(plain)).code == 0  # a run the format never saw
    if behind == "stray":  # a run the lake never committed, on the table (a writer of an older cdc_core)
        stray = tmp_path / "stray.parquet"
        pq.write_table(pq.read_table(tmp_path / "lake/full-load/clientes/clientes.parquet").slice(1), stray)
        fmt.apply(FormatRun(table="clientes", run_id="20990101_000000", key=("id",), snapshot=stray, changes=None,
                            first=True, token="stray"))
    before = fmt.current("clientes").sort_by("id")
    if behind == "stray":
        assert "1" not in before["id"].to_pylist()  # the stray run removed row 1
    else:
        assert before["cidade"][0].as_py() == "Recife"  # run 2 (Olinda) is in the lake, not in the table
    source.write_text(CSV.replace("1;Ana;Recife", "1;Ana;Olinda").replace("3;Caio;Salvador", "3;Caio;Feira"))
    taken = run_cli("--once", "--config", str(other))
    assert taken.code == 0, taken.out + taken.err
    runs = read_manifests(LocalLake(tmp_path / "lake"), "clientes")
    assert len(runs) == 3 and runs[2]["counts"] == {"I": 0, "U": 1, "D": 0}
    checked = run_cli("verify", "--config", str(other))
    assert checked.code == 0, checked.out + checked.err
    full = pq.read_table(tmp_path / "lake/full-load/clientes/clientes.parquet")
    fmt = make_format(config.table_format, config.lake)
    assert_same(fmt.current("clientes"), full, ("id",))
    assert fmt.current("clientes").sort_by("id")["cidade"][0].as_py() == "Olinda"
    for manifest in runs[1:]:
        out = tmp_path / f"replayed_{manifest['run_id']}.parquet"
        assert run_cli("replay", "--config", str(other), "--table", "clientes", "--as-of", manifest["run_id"],
                       "--output", str(out)).code == 0
        assert_same(fmt.as_of("clientes", manifest["run_id"]), pq.read_table(out), ("id",), manifest["run_id"])
    if table_format == "delta" and behind == "killed":  # each run applied once, in order, none merged twice
        from deltalake import DeltaTable

        applied = [h.get("cdc.run_id") for h in DeltaTable(str(tmp_path / "lake/delta/clientes")).history()]
        assert [r for r in applied if r][::-1] == [m["run_id"] for m in runs]
    assert run_cli("--once", "--config", str(first)).code == 0
    assert run_cli("verify", "--config", str(first)).code == 0


# --- the same at the format level: a stray run on the table is undone before the next run of the lake --------

BASE = pa.table({"id": ["1", "2", "3"], "n": pa.array([10, 20, 30], pa.int64()), "s": ["a", "b", "c"]})


def stray_and_winner(tmp_path: Path, orphan_id: str, orphan: pa.Table) -> tuple[Chain, FormatRun]:
    """The lake's chain (run 0, the winner changing id 3) and a stray run on run 0 with the given id."""
    chain = Chain(tmp_path / "lake_runs", "t", ("id",))
    chain.add(BASE)
    chain.add(BASE.set_column(1, "n", pa.array([10, 20, 33], pa.int64())))
    dead = Chain(tmp_path / "dead_runs", "t", ("id",))
    dead.add(BASE)
    stray = dead.add(orphan)  # the same id as the winner's: both are run 0's next
    winner = chain.runs[1]
    run_id = {"earlier": "20250918_170000", "same": winner.run_id, "later": "20991231_000000"}[orphan_id]
    assert chain.runs[0].run_id < "20250918_170000" < winner.run_id == stray.run_id
    chain.runs[1] = replace(winner, token="winner")
    return chain, replace(stray, run_id=run_id, token="dead")


@pytest.mark.parametrize(("orphan_id", "orphan"), [
    ("earlier", BASE.set_column(1, "n", pa.array([11, 20, 30], pa.int64()))),
    ("same", BASE.drop_columns(["s"]).slice(1)),
    ("later", BASE.append_column("extra", pa.array(["x", "y", "z"])).slice(0, 2)),
], ids=["earlier-id", "same-id-column-removed", "later-id-column-added"])
@pytest.mark.parametrize("table_format", ["delta", "iceberg"])
def test_a_run_the_lake_never_committed_is_undone_before_the_winners_run(tmp_path: Path, table_format: str,
                                                                         orphan_id: str, orphan: pa.Table, caplog):
    fmt = format_for(tmp_path, table_format)
    chain, stray = stray_and_winner(tmp_path, orphan_id, orphan)
    first, winner = chain.runs
    fmt.apply(first)
    fmt.apply(stray)
    assert_same(fmt.current("t"), orphan, ("id",), "the stray run")
    version = fmt.apply(winner)
    assert f"holds run {stray.run_id}, which the lake never committed" in caplog.text
    assert "rewrites the table" not in caplog.text
    assert_same(fmt.current("t"), chain.snapshot(winner), ("id",), "after the winner")
    assert fmt.apply(winner) == version == fmt.applied_version("t", winner.run_id)  # a retry changes nothing
    assert_same(fmt.as_of("t", first.run_id), BASE, ("id",), "as of run 0")
    assert_same(fmt.as_of("t", winner.run_id), chain.snapshot(winner), ("id",), "as of the winner")
    after = chain.add(chain.snapshot(winner).slice(1))
    fmt.apply(after)
    assert_same(fmt.current("t"), chain.snapshot(after), ("id",), "the next run")
    assert_same(fmt.as_of("t", winner.run_id), chain.snapshot(winner), ("id",), "as of the winner, later")


@pytest.mark.parametrize("table_format", ["delta", "iceberg"])
def test_a_stray_run_whose_parent_state_is_cleaned_up_is_replaced_by_the_winners_snapshot(tmp_path: Path,
                                                                                         table_format: str, caplog):
    fmt = format_for(tmp_path, table_format)
    chain, stray = stray_and_winner(tmp_path, "earlier", BASE.slice(1))
    first, winner = chain.runs
    fmt.apply(first)
    fmt.apply(stray)
    if table_format == "delta":  # run 0's files are gone: it can no longer be restored
        from deltalake import DeltaTable

        DeltaTable(fmt.uri("t")).vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    else:  # run 0's snapshot is expired
        table = fmt.catalog.load_table(fmt.identifier("t"))
        parent = table.current_snapshot().parent_snapshot_id
        table.maintenance.expire_snapshots().by_id(parent).commit()
    fmt.apply(winner)
    assert f"run {winner.run_id} rewrites the table from its snapshot" in caplog.text
    assert_same(fmt.current("t"), chain.snapshot(winner), ("id",), "after the winner")
    assert_same(fmt.as_of("t", winner.run_id), chain.snapshot(winner), ("id",), "as of the winner")
    after = chain.add(chain.snapshot(winner).slice(1))
    fmt.apply(after)
    assert_same(fmt.current("t"), chain.snapshot(after), ("id",), "the next run")
