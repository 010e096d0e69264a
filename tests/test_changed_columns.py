"""What an update changed: per-column counts in every change set, `_cdc_changed` and before-images in the lake when
asked for, `diff --stat`, and `replay --as-of` that only takes a run id or a date."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cdc_core import load_config, run_once, verify
from cdc_core.lake import LocalLake, read_manifests

from .conftest import run_cli, write_config

DATA = Path(__file__).parent / "data"
KEY = "idCliente"


def by_key(path: Path) -> dict[str, dict[str, str]]:
    with open(path, encoding="utf-8") as f:
        return {row[KEY]: row for row in csv.DictReader(f, delimiter=";")}


def changed_by_text() -> dict[str, list[str]]:
    """For every key in both real versions: the columns whose text differs (an independent comparison)."""
    old, new = by_key(DATA / "clientes_20250918.csv"), by_key(DATA / "clientes_20250922.csv")
    found = {}
    for key in old.keys() & new.keys():
        columns = [c for c in new[key] if c != KEY and old[key][c] != new[key][c]]
        if columns:
            found[key] = columns
    return found


@pytest.fixture
def lake(tmp_path: Path):
    (tmp_path / "source").mkdir()
    table = {"name": "clientes", "pk": KEY, "date_field": "DtAtualizacao", "sep": ";"}
    config = load_config(write_config(tmp_path, source={"type": "directory", "path": "source"}, tables=[table],
                                      cdc={"changed_columns": True, "before_image": True}))
    for version in ("clientes_20250918.csv", "clientes_20250922.csv"):
        (tmp_path / "source" / "clientes.csv").write_text((DATA / version).read_text())
        report = run_once(config)
        assert report.ok, report.tables[0].error
    return tmp_path, config, report


def test_cdc_changed_lists_exactly_the_columns_whose_text_changed(lake):
    folder, _config, report = lake
    rows = pq.read_table(next((folder / "lake/cdc/clientes").glob("*.parquet"))).to_pylist()
    updates = {r[KEY]: sorted(r["_cdc_changed"]) for r in rows if r["op"] == "U"}
    assert updates == {k: sorted(v) for k, v in changed_by_text().items()}
    assert all(r["_cdc_changed"] == [] for r in rows if r["op"] != "U")
    counts: dict[str, int] = {}
    for columns in changed_by_text().values():
        for c in columns:
            counts[c] = counts.get(c, 0) + 1
    assert report.tables[0].column_counts == counts
    assert read_manifests(LocalLake(folder / "lake"), "clientes")[-1]["changed_columns"] == counts


def test_before_images_come_right_before_their_update_and_replay_ignores_them(lake):
    folder, config, _ = lake
    rows = pq.read_table(next((folder / "lake/cdc/clientes").glob("*.parquet"))).to_pylist()
    old = by_key(DATA / "clientes_20250918.csv")
    ops = [r["op"] for r in rows]
    assert ops.count("B") == ops.count("U") == 138
    for before, after in itertools.pairwise(rows):
        if before["op"] == "B":
            assert after["op"] == "U" and after[KEY] == before[KEY]
            assert before["qtdePontos"] == int(old[before[KEY]]["qtdePontos"])
    assert all(c.ok for c in verify(config))


def test_diff_stat_prints_each_changed_column_with_its_updated_rows(tmp_path: Path):
    result = run_cli("diff", str(DATA / "clientes_20250918.csv"), str(DATA / "clientes_20250922.csv"), "--key", KEY,
                     "--sep", ";", "--output", str(tmp_path / "o.parquet"), "--stat")
    assert result.code == 0, result.err
    counts: dict[str, int] = {}
    for columns in changed_by_text().values():
        for c in columns:
            counts[c] = counts.get(c, 0) + 1
    printed = {line.split()[0]: int(line.split()[1].replace(",", "")) for line in result.out.splitlines()
               if line.startswith("  ")}
    assert printed == counts


def test_diff_names_every_missing_input(tmp_path: Path):
    result = run_cli("diff", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--key", "id", "--output",
                     str(tmp_path / "o.parquet"))
    assert result.code == 1 and "a.csv and " in result.err and "b.csv do not exist" in result.err


@pytest.mark.parametrize("as_of, code, says", [
    ("yesterday", 2, "is neither a run id (YYYYMMDD_HHMMSS"),
    ("2020-01-01", 1, "has no capture at or before run 20200101_235959"),
    ("20200101", 1, "has no capture at or before run 20200101_235959"),  # the basic ISO form is a date too
    ("20261399_999999", 2, "is neither a run id (YYYYMMDD_HHMMSS"),  # shaped like a run id, but no moment
])
def test_replay_as_of_takes_a_run_id_or_a_date(lake, as_of: str, code: int, says: str):
    folder, _, _report = lake
    result = run_cli("replay", "--config", str(folder / "config.json"), "--table", "clientes", "--as-of", as_of,
                     "--output", str(folder / "r.parquet"))
    assert result.code == code and says in result.err


def test_replay_as_of_a_date_is_the_last_run_of_that_day(lake):
    folder, _, report = lake
    day = f"{report.run_id[:4]}-{report.run_id[4:6]}-{report.run_id[6:8]}"
    result = run_cli("replay", "--config", str(folder / "config.json"), "--table", "clientes", "--as-of", day,
                     "--output", str(folder / "r.parquet"))
    assert result.code == 0 and f"as of run {report.run_id}: 3,864 rows" in result.out
