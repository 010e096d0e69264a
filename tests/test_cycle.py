"""End to end through the CLI into a temporary lake: full loads, then exactly the demo's changes, then nothing."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from cdc_core.sources.demo import DemoSource

from .conftest import DEMO_TABLES, apply_changes, lake_files, run_cli, same_rows, write_config

KEYS = {t["name"]: [t["pk"]] for t in DEMO_TABLES}
RUN_ID = re.compile(r"^run (\d{8}_\d{6}) ")


def summary_counts(out: str) -> dict[str, dict[str, int]]:
    """The I/U/D counts the summary printed, per table."""
    found = {}
    for line in out.splitlines():
        m = re.match(r"^\s+(\w+)\s+changes\s+I\s+([\d,]+)\s+U\s+([\d,]+)\s+D\s+([\d,]+)", line)
        if m:
            found[m.group(1)] = {op: int(m.group(i).replace(",", "")) for i, op in enumerate("IUD", start=2)}
    return found


def test_first_run_full_loads_second_run_exact_changes_third_run_nothing(demo_config: Path):
    lake = demo_config.parent / "lake"
    first = run_cli("--once", "--config", str(demo_config))
    assert first.code == 0, first.err
    assert [f for f in lake_files(lake) if not f.startswith("base/")] == [
        f"full-load/{t}/{t}.parquet" for t in sorted(KEYS)]
    assert first.out.count("full load") == 4

    second = run_cli("--once", "--config", str(demo_config))
    assert second.code == 0, second.err
    run_id = RUN_ID.match(second.out).group(1)
    expected = DemoSource(seed=7, scale=0.2).expected_changes(2)
    changed = {t: c for t, c in expected.items() if any(c.values())}
    assert summary_counts(second.out) == changed
    assert "produtos" not in changed and re.search(r"produtos\s+no changes", second.out)
    for table, counts in changed.items():
        cdc = pq.read_table(lake / "cdc" / table / f"{table}_{run_id}.parquet").to_pandas()
        assert cdc.op.value_counts().to_dict() == {op: n for op, n in counts.items() if n}
        assert set(cdc._cdc_run_id) == {run_id}
        assert str(cdc._cdc_captured_at.dt.tz) == "UTC"
        assert pq.ParquetFile(lake / "cdc" / table / f"{table}_{run_id}.parquet").metadata.row_group(0) \
            .column(0).compression == "SNAPPY"
    assert not (lake / "cdc" / "produtos").exists()

    third = run_cli("--once", "--config", str(demo_config), "--skip-download")
    assert third.code == 0, third.err
    assert third.out.count("no changes") == 4
    assert len(lake_files(lake)) == 4 + 4 + len(changed)  # full loads, bases, CDC files


def test_replaying_the_cdc_files_onto_the_first_full_load_gives_the_latest(demo_config: Path):
    lake = demo_config.parent / "lake"
    assert run_cli("--once", "--config", str(demo_config)).code == 0
    first = {t: pd.read_parquet(lake / "full-load" / t / f"{t}.parquet") for t in KEYS}
    for _ in range(3):
        assert run_cli("--once", "--config", str(demo_config), "-q").code == 0
    for table, key in KEYS.items():
        state = first[table]
        for path in sorted((lake / "cdc" / table).glob("*.parquet")):
            state = apply_changes(state, pd.read_parquet(path), key)
        latest = pd.read_parquet(lake / "full-load" / table / f"{table}.parquet")
        assert same_rows(state[list(latest.columns)], latest, key), table


def test_a_broken_table_fails_alone_and_is_captured_once_fixed(tmp_path: Path):
    source = tmp_path / "source"
    demo = DemoSource(seed=1, scale=0.2)
    source.mkdir()
    for name in KEYS:
        demo.write(name, 1, source / f"{name}.csv")
    config = write_config(tmp_path, source={"type": "directory", "path": "source"})
    assert run_cli("--once", "--config", str(config)).code == 0

    good = source / "clientes.csv"
    shutil.copy(good, tmp_path / "good.csv")
    with open(good, "a") as f:
        f.write(f"{good.read_text().splitlines()[1]}\n")  # a duplicate key
    for name in ("transacoes", "transacao_produto"):
        demo.write(name, 2, source / f"{name}.csv")
    result = run_cli("--once", "--config", str(config))
    assert result.code == 1
    assert re.search(r"clientes\s+FAILED: Table \"clientes\": clientes.csv: 1 key value\(s\) appear more than once",
                     result.out)
    assert summary_counts(result.out)["transacoes"]["I"] == demo.expected_changes(2)["transacoes"]["I"]
    state = json.loads((tmp_path / "data" / "state" / "clientes.json").read_text())
    assert not (tmp_path / "lake" / "cdc" / "clientes").exists()

    demo.write("clientes", 2, good)
    fixed = run_cli("--once", "--config", str(config))
    assert fixed.code == 0
    assert summary_counts(fixed.out)["clientes"] == demo.expected_changes(2)["clientes"]
    assert json.loads((tmp_path / "data" / "state" / "clientes.json").read_text())["run_id"] > state["run_id"]


def test_only_selected_tables_are_captured(demo_config: Path):
    result = run_cli("--once", "--config", str(demo_config), "--tables", "produtos")
    assert result.code == 0
    assert [f for f in lake_files(demo_config.parent / "lake") if f.startswith("full-load/")] == [
        "full-load/produtos/produtos.parquet"]


def test_skip_download_before_any_fetch_is_a_clear_error(demo_config: Path):
    result = run_cli("--once", "--config", str(demo_config), "--skip-download")
    assert result.code == 1
    assert "Nothing was fetched into" in result.err and "run once without --skip-download" in result.err


def test_an_emptied_file_is_refused_unless_the_table_allows_it(tmp_path: Path):
    source = tmp_path / "source"
    source.mkdir()
    DemoSource(seed=1, scale=0.2).write("produtos", 1, source / "produtos.csv")
    tables = [{"name": "produtos", "pk": "IdProduto", "sep": ";"}]
    config = write_config(tmp_path, source={"type": "directory", "path": "source"}, tables=tables)
    assert run_cli("--once", "--config", str(config)).code == 0
    header = (source / "produtos.csv").read_text().splitlines()[0]
    (source / "produtos.csv").write_text(header + "\n")  # a cut download: the header and nothing else
    refused = run_cli("--once", "--config", str(config))
    assert refused.code == 1
    assert "produtos.csv has a header but no rows, while the last capture had 41 — a cut download?" in refused.out
    assert not (tmp_path / "lake" / "cdc").exists()
    write_config(tmp_path, source={"type": "directory", "path": "source"},
                 tables=[{**tables[0], "allow_empty": True}])
    emptied = run_cli("--once", "--config", str(config))
    assert emptied.code == 0 and re.search(r"produtos\s+changes\s+I\s+0\s+U\s+0\s+D\s+41", emptied.out)


def test_a_fetch_where_every_table_failed_keeps_the_last_good_fetch_for_skip_download(tmp_path: Path):
    (tmp_path / "source").mkdir()
    shutil.copy(Path(__file__).parent / "data" / "produtos_41.csv", tmp_path / "source" / "produtos.csv")
    config = write_config(tmp_path, source={"type": "directory", "path": "source"},
                          tables=[{"name": "produtos", "pk": "IdProduto", "sep": ";"}])
    assert run_cli("--once", "--config", str(config)).code == 0
    (tmp_path / "source" / "produtos.csv").unlink()  # the drop folder is empty for a while
    assert run_cli("--once", "--config", str(config)).code == 1
    again = run_cli("--once", "--skip-download", "--config", str(config))
    assert again.code == 0 and "no changes" in again.out, again.out + again.err
