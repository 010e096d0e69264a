"""The marimo notebooks run against a demo lake and show the core's numbers; `marimo check` and the ipynb agree."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest

from cdc_core import RunReport, explore, load_config, run_once
from cdc_core.lake import read_manifests
from cdc_core.replay import replay

from .conftest import write_config

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
MARIMO = [sys.executable, "-m", "marimo"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, list[RunReport]]:
    """A demo config (seed 7, small scale) and the reports of four captures into its lake (the first full loads)."""
    config = write_config(tmp_path_factory.mktemp("demo"), source={"type": "demo", "seed": 7, "scale": 0.05})
    return config, [run_once(load_config(config)) for _ in range(4)]


def run_notebook(name: str, monkeypatch, config: Path | None, argv: list[str] | None = None, **overrides):
    """Run a notebook with `app.run()` as a fresh module; returns (outputs, definitions)."""
    monkeypatch.delenv(explore.LAKE_ENV, raising=False)
    if config is None:
        monkeypatch.delenv(explore.CONFIG_ENV, raising=False)
    else:
        monkeypatch.setenv(explore.CONFIG_ENV, str(config))
    monkeypatch.setattr(sys, "argv", [name, *(argv or [])])  # mo.cli_args() reads them in a script
    spec = importlib.util.spec_from_file_location(f"notebook_{name}", NOTEBOOKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app.run(defs=overrides or None)


def lake_state(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime for p in sorted(folder.rglob("*")) if p.is_file()}


def tags(output) -> set[str]:
    return set(re.findall(r"<(marimo-[a-z]+)", getattr(output, "text", "") or ""))


def expected_history(lake: Path, table: str, pk: str, key: str) -> list[tuple[str, str, set]]:
    """Independently of the core: (run, op, {(column, old, new) that changed}) from the base and the CDC files."""
    events = [("_".join(f.stem.rsplit("_", 2)[-2:]), "full load", row)
              for f in (lake / "base" / table).glob("*.parquet")
              for row in pq.read_table(f).to_pylist() if row[pk] == key]
    events += [(row["_cdc_run_id"], row["op"], row) for f in sorted((lake / "cdc" / table).glob("*.parquet"))
               for row in pq.read_table(f).to_pylist() if row[pk] == key]
    def text(value) -> str | None:
        return None if value is None else str(value)

    out, before = [], {}
    for run_id, op, row in sorted(events, key=lambda e: e[0]):
        values = {c: v for c, v in row.items() if c not in (pk, "op", "_cdc_run_id", "_cdc_captured_at")}
        if op == "D":
            changed = {(c, text(v), None) for c, v in values.items()}
        else:
            changed = {(c, text(before.get(c)), text(v)) for c, v in values.items() if op != "U" or before.get(c) != v}
        out.append((run_id, op, changed))
        before = {} if op == "D" else values
    return out


def test_explore_notebook_shows_the_core_numbers(demo, monkeypatch):
    config, reports = demo
    lake = Path(load_config(config).lake.url)
    before = lake_state(lake)
    outputs, defs = run_notebook("explore", monkeypatch, config)
    assert lake_state(lake) == before  # the notebook only reads the lake
    assert defs["lake"].url == str(lake) and defs["table_names"] == sorted(t.table for t in reports[0].tables)
    table = defs["table_pick"].value
    assert table == "clientes"
    # counts per run: the manifests, and what each capture reported
    found = read_manifests(defs["lake"], table)
    runs = defs["run_list"]
    assert runs["run_id"].tolist() == [m["run_id"] for m in found] == [r.run_id for r in reports]
    assert runs[["I", "U", "D"]].to_dict("records") == [m["counts"] for m in found]
    assert runs[["I", "U", "D"]].to_dict("records") == [r.tables[0].counts for r in reports]
    assert runs["rows"].tolist() == [r.tables[0].rows for r in reports]
    # change rows of the selected run: the latest capture, every op
    assert defs["run_pick"].value == [reports[-1].run_id]
    ops = defs["change_rows"]["op"].to_pylist()
    assert {op: ops.count(op) for op in "IUD"} == reports[-1].tables[0].counts
    # a key's history: what the base and the CDC files say about it
    key = defs["chosen_key"]
    history = defs["history"]
    got = [(run_id, group["op"].iloc[0], {(c, o, n) for c, o, n in group[["column", "old", "new"]].values})
           for run_id, group in history.groupby("run_id", sort=True)]
    assert got == expected_history(lake, table, "idCliente", key)
    assert got[0][1] == "full load" and len(got) >= 2
    # time travel: the replay's row count is what that run's manifest says
    as_of = defs["as_of_pick"].value
    assert as_of == reports[-2].run_id
    assert defs["rebuilt"].rows == next(m["rows"] for m in found if m["run_id"] == as_of)
    since = defs["rebuilt"].since.counts
    assert defs["rebuilt"].latest_rows - defs["rebuilt"].rows == since["I"] - since["D"]
    assert since == reports[-1].tables[0].counts  # one run before the latest full load
    assert defs["notes"].empty
    rendered = set().union(*map(tags, outputs))
    assert {"marimo-vega", "marimo-table", "marimo-dropdown", "marimo-multiselect", "marimo-stat"} <= rendered
    # the chart: the full load labelled with its rows, not a blank bar
    spec = defs["runs_chart"].to_dict()
    labels = spec["datasets"][spec["layer"][1]["data"]["name"]]
    assert [(r["run_id"], r["label"]) for r in labels] == [(reports[0].run_id,
                                                            f"full load · {reports[0].tables[0].rows:,} rows")]
    # the columns each run's updates changed: a column-by-column comparison of the run's U rows with the table
    # replayed as of the run before (the lake's files, read here with pyarrow)
    last, before = reports[-1].run_id, reports[-2].run_id
    replayed = replay(defs["lake"], table, lake.parent / "before.parquet", as_of=before).path
    previous = {r["idCliente"]: r for r in pq.read_table(replayed).to_pylist()}
    updated = [r for r in pq.read_table(lake / "cdc" / table / f"{table}_{last}.parquet").to_pylist()
               if r["op"] == "U"]
    counted = Counter(c for r in updated for c, v in r.items()
                      if c in previous[r["idCliente"]] and c != "idCliente" and previous[r["idCliente"]][c] != v)
    assert runs["changed_columns"].iloc[-1] == explore.changed_columns_text(counted) != ""
    assert defs["history_line"].startswith(f"`{key}`: **{len(got)}** version(s)")


def test_explore_notebook_with_only_a_full_load_says_so_instead_of_an_empty_chart(tmp_path, monkeypatch):
    config = write_config(tmp_path, source={"type": "demo", "seed": 7, "scale": 0.05})
    report = run_once(load_config(config))
    outputs, defs = run_notebook("explore", monkeypatch, config)
    assert defs["runs_chart"] is None and defs["run_list"]["kind"].tolist() == ["full_load"]
    shown = " ".join(getattr(o, "text", "") or "" for o in outputs)
    rows = report.tables[0].rows
    assert f"has only its full load so far (run {report.run_id}, {rows:,} rows)" in shown
    assert "marimo-vega" not in shown and "0.000000" not in shown


def test_explore_notebook_says_an_unknown_key_is_not_in_the_lake(demo, monkeypatch):
    config, _ = demo
    outputs, defs = run_notebook("explore", monkeypatch, config, key_box=SimpleNamespace(value="no-such-key"))
    assert defs["history"].empty and defs["chosen_key"] == "no-such-key"
    shown = " ".join(getattr(o, "text", "") or "" for o in outputs)
    assert "is not in the lake" in shown and "0</strong> version(s)" not in shown and "**0**" not in shown


def test_text_box_placeholders_fit_their_boxes():
    """marimo's text box shows about 16 characters (an 80-character placeholder was cut off): say more in labels."""
    for notebook in NOTEBOOKS.glob("*.py"):
        for placeholder in re.findall(r'placeholder="([^"]*)"', notebook.read_text()):
            assert len(placeholder) <= 16, (notebook.name, placeholder)


def test_explore_notebook_shows_the_delta_version_of_each_run(tmp_path, monkeypatch):
    from deltalake import DeltaTable

    config = write_config(tmp_path, source={"type": "demo", "seed": 7, "scale": 0.05}, table_format="delta")
    for _ in range(2):
        run_once(load_config(config))
    _, defs = run_notebook("explore", monkeypatch, config)
    runs = defs["run_list"]
    delta = DeltaTable(str(tmp_path / "lake" / "delta" / "clientes"))
    assert runs["table_format"].tolist() == ["delta", "delta"]
    assert runs["table_version"].iloc[-1] == delta.version()
    assert runs["table_version"].tolist() == sorted(runs["table_version"]) and runs["table_version"].nunique() == 2


def test_explore_notebook_takes_the_lake_from_its_arguments(demo, monkeypatch):
    config, reports = demo
    lake = load_config(config).lake.url
    _, defs = run_notebook("explore", monkeypatch, None, ["--lake", lake])
    assert defs["lake_box"].value == lake and defs["lake"].url == lake
    assert defs["run_list"]["run_id"].tolist() == [r.run_id for r in reports]


def test_explore_notebook_says_when_the_lake_is_empty(tmp_path, monkeypatch):
    _, defs = run_notebook("explore", monkeypatch, write_config(tmp_path))
    assert "no captures yet" in defs["lake_problem"] and "./cdc --once" in defs["lake_problem"]
    assert "table_pick" not in defs and "history" not in defs


@pytest.fixture
def copy_of_demo(demo, tmp_path) -> Path:
    """The demo config, lake and data dir copied, for a test that captures into them."""
    config, _ = demo
    shutil.copytree(config.parent, tmp_path / "demo", symlinks=True)
    return tmp_path / "demo" / "config.json"


def test_preview_notebook_runs_nothing_on_open(copy_of_demo, monkeypatch):
    before = lake_state(copy_of_demo.parent)
    _, defs = run_notebook("preview", monkeypatch, copy_of_demo)
    assert defs["table_choice"].value == load_config(copy_of_demo).table_names
    assert "report" not in defs
    assert lake_state(copy_of_demo.parent) == before  # not even a fetch


def test_preview_notebook_shows_what_a_capture_then_publishes(copy_of_demo, monkeypatch):
    lake = copy_of_demo.parent / "lake"
    before = lake_state(lake)
    _, defs = run_notebook("preview", monkeypatch, copy_of_demo, preview_button=SimpleNamespace(value=True))
    report = defs["report"]
    assert report.dry_run and lake_state(lake) == before  # nothing written to the lake
    counts = defs["preview_counts"].set_index("table")[["I", "U", "D"]].to_dict("index")
    table = defs["preview_table"].value
    ops = defs["preview_rows"]["op"].to_pylist()
    assert {op: ops.count(op) for op in "IUD"} == counts[table]
    assert defs["preview_history"]["run_id"].iloc[-1] == report.run_id  # the previewed change comes last
    columns = defs["preview_counts"].set_index("table")["changed_columns"].to_dict()
    assert columns == {t.table: explore.changed_columns_text(t.column_counts) for t in report.tables}
    published = run_once(load_config(copy_of_demo))
    assert {t.table: t.counts for t in published.tables} == counts
    manifests = {t.table: read_manifests(explore.open_lake("", config=copy_of_demo), t.table)[-1]
                 for t in published.tables if t.status == "changes"}
    assert {name: explore.changed_columns_text(m.get("changed_columns", {})) for name, m in manifests.items()} == {
        name: columns[name] for name in manifests}


def test_marimo_check_passes():
    result = subprocess.run([*MARIMO, "check", "--strict", str(NOTEBOOKS)], check=False, capture_output=True,
                            text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ipynb_is_exported_from_the_marimo_notebook(tmp_path):
    out = tmp_path / "explore.ipynb"
    subprocess.run([*MARIMO, "export", "ipynb", str(NOTEBOOKS / "explore.py"), "-o", str(out)], check=True,
                   capture_output=True, timeout=120, cwd=ROOT)

    def cells(path: Path) -> list[tuple[str, str]]:
        return [(c["cell_type"], "".join(c["source"])) for c in json.loads(path.read_text())["cells"]]

    assert cells(NOTEBOOKS / "explore.ipynb") == cells(out), (
        "notebooks/explore.ipynb is out of date — run: marimo export ipynb notebooks/explore.py "
        "-o notebooks/explore.ipynb -f")


def test_ipynb_runs_top_to_bottom_in_plain_python(demo, monkeypatch):
    config, reports = demo
    monkeypatch.setenv(explore.CONFIG_ENV, str(config))
    monkeypatch.delenv(explore.LAKE_ENV, raising=False)
    monkeypatch.chdir(NOTEBOOKS)
    namespace: dict = {}
    for cell in json.loads((NOTEBOOKS / "explore.ipynb").read_text())["cells"]:
        if cell["cell_type"] == "code":
            exec("".join(cell["source"]), namespace)  # noqa: S102 - our own notebook, as a kernel would run it
    assert namespace["run_list"]["run_id"].tolist() == [r.run_id for r in reports]
    assert namespace["rebuilt"].rows == reports[-2].tables[0].rows
    assert "<table" in namespace["rebuilt"].since._repr_html_()
    assert os.environ[explore.CONFIG_ENV] == str(config)
