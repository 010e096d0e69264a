"""Reading the lake for the notebooks: runs, change rows, a key's history, time travel, notes, HTML reprs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pytest

from cdc_core import RunReport, TableReport, diff, explore, load_config, run_once
from cdc_core.errors import CdcError, LakeError
from cdc_core.lake import LocalLake
from cdc_core.replay import replay

from .conftest import write_config

# One table through four captures: updates, a delete and a re-insert, a column added, a content change without a
# later date (a warning), and a column that turns from whole numbers into decimals (a type change).
VERSIONS = [
    "id,points,email,updated\n1,10,a@x,2025-01-01\n2,20,b@x,2025-01-01\n3,30,,2025-01-01\n",
    "id,points,email,updated\n1,15,a@x,2025-01-02\n2,20,b@x,2025-01-01\n4,40,d@x,2025-01-02\n",
    "id,points,email,updated,tier\n1,15,a2@x,2025-01-03,gold\n2,21,b@x,2025-01-01,\n4,40,d@x,2025-01-02,\n",
    "id,points,email,updated,tier\n2,21.5,b@x,2025-01-04,\n3,33,c@x,2025-01-04,new\n4,40,d@x,2025-01-02,\n",
]


@pytest.fixture(scope="module")
def story(tmp_path_factory) -> tuple[LocalLake, list[str]]:
    """The lake of VERSIONS, captured one version per run; returns the lake and the run ids."""
    folder = tmp_path_factory.mktemp("story")
    (folder / "source").mkdir()
    table = {"name": "clientes", "pk": "id", "date_field": "updated"}
    config = load_config(write_config(folder, source={"type": "directory", "path": "source"}, tables=[table]))
    run_ids = []
    for text in VERSIONS:
        (folder / "source" / "clientes.csv").write_text(text)
        report = run_once(config)
        assert report.ok, report.tables[0].error
        run_ids.append(report.run_id)
    return LocalLake(folder / "lake"), run_ids


def test_runs_are_the_manifests(story):
    lake, run_ids = story
    runs = explore.runs(lake, "clientes")
    assert runs["run_id"].tolist() == run_ids
    assert runs["kind"].tolist() == ["full_load", "changes", "changes", "changes"]
    assert runs[["I", "U", "D"]].values.tolist() == [[0, 0, 0], [1, 1, 1], [0, 2, 0], [1, 1, 1]]
    assert runs["rows"].tolist() == [3, 3, 3, 3]
    assert "without a later" in runs["warnings"][2]
    assert explore.tables(lake) == ["clientes"]


def test_runs_name_the_columns_each_update_changed(story):
    lake, _ = story
    runs = explore.runs(lake, "clientes")
    # from VERSIONS, by hand: run 2 moved id 1's points and date; run 3 id 1's email, date and new tier, id 2's
    # points (without a later date: a warning); run 4 id 2's points (now 21.5) and date
    assert runs["changed_columns"].tolist() == ["", "points 1, updated 1", "email 1, points 1, tier 1, updated 1",
                                                "points 1, updated 1"]
    assert "table_format" not in runs  # only for a lake kept as Delta or Iceberg tables too


def test_the_chart_labels_the_full_load_and_is_none_without_changes(story):
    lake, run_ids = story
    runs = explore.runs(lake, "clientes")
    spec = explore.counts_chart(runs).to_dict()
    bars, labels = spec["layer"]
    assert labels["mark"]["type"] == "text"
    label_rows = spec["datasets"][labels["data"]["name"]]
    assert [(r["run_id"], r["label"]) for r in label_rows] == [(run_ids[0], "full load · 3 rows")]
    assert bars["encoding"]["y"]["axis"]["format"] == ",d"  # whole rows: no 0.000000 axis
    bar_rows = spec["datasets"][bars["data"]["name"]]
    assert {r["run_id"] for r in bar_rows} == set(run_ids[1:])  # the full load is not an empty bar
    assert bars["encoding"]["x"]["scale"]["domain"] == run_ids  # every run in its place, in order
    assert explore.counts_chart(runs.iloc[:1]) is None  # only the full load: nothing to chart
    note = explore.only_full_load(runs.iloc[:1], "clientes")
    assert note.startswith("`clientes` has only its full load so far") and f"run {run_ids[0]}, 3 rows" in note


def test_an_unknown_key_is_said_to_be_not_in_the_lake(story):
    lake, _ = story
    missing = explore.history_title("clientes", "no-such-key", explore.key_history(lake, "clientes", "no-such-key"))
    assert "`no-such-key` is not in the lake's `clientes`" in missing and "version" not in missing
    found = explore.history_title("clientes", "3", explore.key_history(lake, "clientes", "3"))
    assert found.startswith("`3`: **3** version(s)")


def test_changes_of_chosen_runs_filtered_by_op_and_key(story):
    lake, run_ids = story
    assert explore.changes(lake, "clientes").num_rows == 8
    rows = explore.changes(lake, "clientes", run_ids[1:2])
    assert sorted(zip(rows["op"].to_pylist(), rows["id"].to_pylist(), strict=True)) == [
        ("D", "3"), ("I", "4"), ("U", "1")]
    deletes = explore.changes(lake, "clientes", ops=["D"])
    assert deletes["id"].to_pylist() == ["3", "1"] and set(deletes["_cdc_run_id"].to_pylist()) == {
        run_ids[1], run_ids[3]}
    assert explore.changes(lake, "clientes", key="3")["op"].to_pylist() == ["D", "I"]
    assert explore.changes(lake, "clientes", run_ids, ops=[]).num_rows == 0
    assert explore.changes(lake, "clientes", []).num_rows == 0


def test_key_history_shows_old_and_new_per_column(story):
    lake, run_ids = story
    history = explore.key_history(lake, "clientes", "1")
    got = [tuple(r) for r in history[["run_id", "op", "column", "old", "new"]].itertuples(index=False)]
    day = "2025-01-0{} 00:00:00+00:00".format
    assert got == [
        (run_ids[0], "full load", "points", None, "10"),
        (run_ids[0], "full load", "email", None, "a@x"),
        (run_ids[0], "full load", "updated", None, day(1)),
        (run_ids[1], "U", "points", "10", "15"),
        (run_ids[1], "U", "updated", day(1), day(2)),
        (run_ids[2], "U", "email", "a@x", "a2@x"),
        (run_ids[2], "U", "updated", day(2), day(3)),
        (run_ids[2], "U", "tier", None, "gold"),
        (run_ids[3], "D", "points", "15", None),  # points turned to text in that run: its text as read
        (run_ids[3], "D", "email", "a2@x", None),
        (run_ids[3], "D", "updated", day(3), None),
        (run_ids[3], "D", "tier", "gold", None),
    ]
    assert explore.key_history(lake, "clientes", {"id": "1"}).equals(history)


def test_key_history_of_a_deleted_and_reinserted_key(story):
    lake, run_ids = story
    history = explore.key_history(lake, "clientes", "3")
    assert history.drop_duplicates("run_id")[["run_id", "op"]].values.tolist() == [
        [run_ids[0], "full load"], [run_ids[1], "D"], [run_ids[3], "I"]]
    inserted = history[history["op"] == "I"].set_index("column")
    assert inserted.loc["points", "old"] is None and inserted.loc["points", "new"] == "33"
    assert inserted.loc["tier", "new"] == "new"
    assert explore.key_history(lake, "clientes", "no-such-key").empty


def test_key_history_rejects_a_key_without_every_column(story):
    lake, _ = story
    with pytest.raises(CdcError, match="every key column"):
        explore.key_history(lake, "clientes", {"other": "1"})
    with pytest.raises(LakeError, match="no captures"):
        explore.key_history(lake, "nope", "1")


@pytest.mark.parametrize("run", [0, 1, 2, 3])
def test_as_of_is_the_replay_compared_with_the_latest_full_load(story, tmp_path, run):
    lake, run_ids = story
    rebuilt = explore.as_of(lake, "clientes", run_ids[run])
    assert rebuilt.run_id == run_ids[run]
    assert rebuilt.rows == explore.runs(lake, "clientes")["rows"][run]
    replayed = replay(lake, "clientes", tmp_path / "t.parquet", as_of=run_ids[run])
    assert rebuilt.preview.num_rows == replayed.rows
    assert rebuilt.preview.column_names[0] == "id"  # the table's own column order
    full_load = lake.local("full-load/clientes/clientes.parquet", tmp_path)
    assert rebuilt.since.counts == diff(replayed.path, full_load, "id").counts
    assert rebuilt.latest_rows == 3
    assert (rebuilt.since.total == 0) == (run == 3)


def test_run_notes_list_schema_changes_and_warnings(story):
    lake, run_ids = story
    notes = explore.run_notes(lake, "clientes")
    got = [tuple(r) for r in notes[["run_id", "kind"]].itertuples(index=False)]
    assert got == [(run_ids[2], "schema"), (run_ids[2], "data quality"), (run_ids[3], "schema")]
    assert notes["note"].tolist()[0] == 'column "tier" added (VARCHAR)'
    assert "without a later" in notes["note"].tolist()[1]
    assert notes["note"].tolist()[2] == 'column "points" changed type BIGINT → VARCHAR'


def test_busiest_keys_come_first(story):
    lake, _ = story
    assert explore.busiest_keys(lake, "clientes") == ["1", "2", "3", "4"]  # 3 changes, then 2, 2, 1
    assert explore.busiest_keys(lake, "clientes", limit=1) == ["1"]


def test_open_lake_from_a_config_a_folder_or_s3(tmp_path, monkeypatch):
    config = write_config(tmp_path)
    (tmp_path / "lake").mkdir()
    assert explore.open_lake(str(config)).url == str(tmp_path / "lake")
    assert explore.open_lake(tmp_path / "lake").url == str(tmp_path / "lake")
    assert explore.open_lake("", config=config).url == str(tmp_path / "lake")
    lake = explore.open_lake("s3://bucket/some/prefix/")
    assert (lake.url, lake.config.bucket, lake.config.prefix) == ("s3://bucket/some/prefix", "bucket", "some/prefix")
    with pytest.raises(LakeError, match="is not a folder"):
        explore.open_lake(tmp_path / "missing")
    with pytest.raises(LakeError, match="No lake given"):
        explore.open_lake("", config=tmp_path / "missing.json")


def test_notebook_arguments_then_environment_then_default(tmp_path, monkeypatch):
    config = write_config(tmp_path)
    monkeypatch.delenv(explore.CONFIG_ENV, raising=False)
    monkeypatch.delenv(explore.LAKE_ENV, raising=False)
    assert explore.config_file({}, default=config) == config.resolve()
    monkeypatch.setenv(explore.CONFIG_ENV, "/elsewhere/config.json")
    assert explore.config_file({}, default=config) == Path("/elsewhere/config.json")
    assert explore.config_file({"config": str(config)}) == config.resolve()
    assert explore.lake_url(config) == str(tmp_path / "lake")
    assert explore.lake_url(tmp_path / "missing.json") == ""
    monkeypatch.setenv(explore.LAKE_ENV, "s3://b/p")
    assert explore.lake_url(config) == "s3://b/p"
    assert explore.lake_url(config, {"lake": "/x"}) == "/x"


def test_change_set_renders_as_an_html_table():
    previous = pa.table({"id": ["1", "2"], "name": ["a", "<b>"]})
    current = pa.table({"id": ["1", "3"], "name": ["a2", "c"]})
    html = diff(previous, current, "id")._repr_html_()
    assert "<table" in html and "<b>I</b> 1 · <b>U</b> 1 · <b>D</b> 1" in html
    assert "&lt;b&gt;" in html and "<td>&lt;b&gt;</td>" in html  # values are escaped


def test_run_report_renders_as_an_html_table():
    report = RunReport(run_id="20250101_000000", source="demo", lake="/lake", source_version="3",
                       started_at=None, dry_run=True, tables=[
                           TableReport("clientes", status="changes", counts={"I": 1, "U": 2, "D": 3}, rows=1234),
                           TableReport("produtos", status="failed", error='bad <file> "x"')])
    html = re.sub(r' style="[^"]*"', "", report._repr_html_())
    assert "<table>" in html and "dry run" in html
    assert "<td>clientes</td><td>changes</td><td>1</td><td>2</td><td>3</td><td>1,234</td>" in html
    assert "bad &lt;file&gt; &quot;x&quot;" in html


def test_manifests_are_read_from_the_lake(story):
    lake, run_ids = story
    found = explore.manifests(lake, "clientes")
    assert [m["run_id"] for m in found] == run_ids
    on_disk = json.loads((lake.root / "manifests/clientes" / f"clientes_{run_ids[0]}.json").read_text())
    assert found[0] == on_disk
