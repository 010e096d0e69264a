"""cdc-tui at 80×24: what an update changed (detail pane, pinned key, marked cells, per-column summary) and the
rough edges of daily use (search focus, check boxes, the timed loop's state, sparklines, table versions)."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from rich.align import Align
from rich.text import Text
from textual.coordinate import Coordinate
from textual.pilot import Pilot
from textual.widgets import Static

from cdc_core import TableReport, run_once
from cdc_core.config import Config, load_config
from cdc_core.lake import make_lake, read_manifests
from cdc_core.state import State
from tui.app import CdcApp
from tui.confirm import ConfirmScreen
from tui.data import load_overview, read_preview, row_detail
from tui.loop import LoopScreen
from tui.render import CHANGED_STYLE, history, overview_detail, report_line, value_text
from tui.widgets import ChangeTable, RowPane, TableChecklist, TableDiff, Tick

from .conftest import write_config
from .test_tui import FROZEN, make_config, open_preview, rendered, text_of, wait_for

SMALL = (80, 24)


@pytest.fixture
def demo(tmp_path: Path, monkeypatch) -> Config:
    """The small demo, captured once: a preview then has inserts, updates and deletes."""
    monkeypatch.chdir(tmp_path)
    return make_config(tmp_path)


def lookup(table: pa.Table, key_column: str, key: str) -> dict:
    """The one row of `table` whose key (as text) is `key` — read with pyarrow, independently of the TUI."""
    rows = table.filter(pc.equal(pc.cast(table[key_column], pa.string()), key)).to_pylist()
    assert len(rows) == 1, (key, rows)
    return rows[0]


def pane(diff: TableDiff) -> tuple[str, dict[str, str]]:
    """The detail pane as a user reads it: its title, and `column → what it shows` per line."""
    widget = diff.query_one(RowPane)
    assert widget.display and widget.region.height > 0
    text = str(widget.query_one(".lines", Static).content)
    title = Text.from_markup(str(widget.border_title)).plain
    if title.startswith("U "):  # one line per changed column: `column  old → new`
        pairs = [line.partition("  ")[::2] for line in text.splitlines()]
    else:  # `column value · column value …`
        pairs = [item.partition(" ")[::2] for item in text.split(" · ")]
    return title, {column.strip(): shown.strip() for column, shown in pairs}


def with_every_op(screen) -> TableDiff:
    """The preview's table with inserts, updates and deletes (the demo moves clientes every way)."""
    for name in screen.tables:
        diff = screen.diff(name)
        if diff.report.status == "changes" and all(diff.report.counts[op] for op in "IUD"):
            return diff
    raise AssertionError("no previewed table has I, U and D rows")


async def show_table(pilot: Pilot, diff: TableDiff) -> None:
    pilot.app.screen.query_one("#tabs").active = f"t-{diff.table.name}"
    await pilot.pause()
    diff.focus_grid()
    await pilot.pause()


async def test_the_detail_pane_shows_old_to_new_of_the_highlighted_row(demo: Config):
    async with CdcApp(demo).run_test(size=SMALL) as pilot:
        screen = await open_preview(pilot)
        diff = with_every_op(screen)
        await show_table(pilot, diff)
        name, (pk,) = diff.table.name, diff.table.pk
        committed = State(demo.data_dir).committed(name)
        assert json.loads((diff.report.preview / "entry.json").read_text())["parent"] == committed.run_id
        previous = pq.read_table(committed.snapshot)  # what the lake holds now
        current = pq.read_table(diff.report.preview / "snapshot.parquet")  # what the preview would capture
        for op in "IUD":
            await pilot.press("f")  # all → I → U → D
            await pilot.pause()
            grid = diff.query_one(ChangeTable)
            assert diff.op == op and grid.row_count == diff.report.counts[op]
            for row in range(min(3, grid.row_count)):
                await pilot.press("down" if row else "home")
                await pilot.pause()
                assert grid.cursor_coordinate.row == row
                key = grid.get_cell_at(Coordinate(row, 1))
                title, shown = pane(diff)
                assert title.startswith(f"{op} {key} · ")
                if op == "U":
                    old, new = lookup(previous, pk, key), lookup(current, pk, key)
                    changed = [c for c in new if c != pk and old[c] != new[c]]
                    assert changed and shown == {c: f"{value_text(old[c])} → {value_text(new[c])}" for c in changed}
                    assert f"{len(changed)} of {len(new) - 1} column(s) changed" in title
                    names = diff.query_one(ChangeTable).ordered_columns
                    for index, column in enumerate(names):  # the changed cells are marked, and only they
                        cell = grid.get_cell_at(Coordinate(row, index))
                        text = cell.renderable if isinstance(cell, Align) else cell  # numbers: right-aligned
                        marked = isinstance(text, Text) and text.style == CHANGED_STYLE
                        assert marked == (str(column.label) in changed), column.label
                elif op == "I":
                    new = lookup(current, pk, key)
                    assert shown == {c: value_text(v) for c, v in new.items() if c != pk} and "inserted" in title
                    assert not pc.any(pc.equal(pc.cast(previous[pk], pa.string()), key)).as_py()
                else:
                    old = lookup(previous, pk, key)
                    assert shown == {c: value_text(v) for c, v in old.items() if c != pk} and "deleted" in title
                    assert not pc.any(pc.equal(pc.cast(current[pk], pa.string()), key)).as_py()
        pane_region = diff.query_one(RowPane).region
        assert pane_region.bottom <= SMALL[1] and grid.region.height >= 4  # both fit at 80×24


async def test_the_summary_line_counts_the_rows_each_column_changed_in(demo: Config):
    async with CdcApp(demo).run_test(size=SMALL) as pilot:
        screen = await open_preview(pilot)
        for name in screen.tables:
            diff = screen.diff(name)
            summary = diff.query_one(".columns", Static)
            if not diff.report.counts["U"]:
                assert not summary.display
                continue
            (pk,) = diff.table.pk
            previous = pq.read_table(State(demo.data_dir).committed(name).snapshot)
            current = pq.read_table(diff.report.preview / "snapshot.parquet")
            updated = diff.rows.filter(pc.equal(diff.rows["op"], "U"))[pk].to_pylist()
            expected = Counter()  # column by column, from the two snapshots alone
            for key in updated:
                old, new = lookup(previous, pk, key), lookup(current, pk, key)
                expected.update(c for c in new if c != pk and old[c] != new[c])
            ranked = sorted(expected.items(), key=lambda item: (-item[1], item[0]))
            assert text_of(summary) == "updated columns  " + " · ".join(f"{c} {n:,}" for c, n in ranked)
            assert summary.display and summary.region.width > 0


async def test_op_and_the_key_stay_in_view_when_scrolling_right(demo: Config):
    async with CdcApp(demo).run_test(size=SMALL) as pilot:
        screen = await open_preview(pilot)
        diff = with_every_op(screen)
        await show_table(pilot, diff)
        grid = diff.query_one(ChangeTable)
        labels = [str(c.label) for c in grid.ordered_columns]
        assert labels[:2] == ["op", *diff.table.pk]
        await pilot.press(*["right"] * len(labels))
        await pilot.pause()
        assert grid.scroll_x > 0 and grid.cursor_coordinate.column == len(labels) - 1
        header = grid.render_line(0).text.split()
        assert header[:2] == ["op", *diff.table.pk] and labels[-1] in header
        assert labels[2] not in header  # the first other column scrolled out of view
        first = grid.render_line(1).text.split()
        assert first[:2] == [grid.get_cell_at(Coordinate(0, 0)).plain, grid.get_cell_at(Coordinate(0, 1))]


async def test_enter_and_escape_leave_the_search_box_so_brackets_change_tables(demo: Config):
    async with CdcApp(demo).run_test(size=SMALL) as pilot:
        screen = await open_preview(pilot)
        tabs = screen.query_one("#tabs")
        first = screen.diff(screen.tables[0])
        key = first.rows[first.table.pk[0]][0].as_py()[:6]
        await pilot.press("slash", *key, "enter")
        await pilot.pause()
        assert first.search == key and isinstance(screen.focused, ChangeTable)
        assert first.query_one(ChangeTable).row_count >= 1
        await pilot.press("right_square_bracket")
        await pilot.pause()
        assert tabs.active == f"t-{screen.tables[1]}" and first.search == key  # no "]" typed into the query
        await pilot.press("left_square_bracket", "slash", *key[:3], "escape")  # the box selects its text: replaced
        await pilot.pause()
        assert tabs.active == f"t-{screen.tables[0]}" and first.search == key[:3]
        assert isinstance(screen.focused, ChangeTable)
        await pilot.press("right_square_bracket")
        await pilot.pause()
        assert tabs.active == f"t-{screen.tables[1]}" and first.search == key[:3]


async def test_checked_and_unchecked_boxes_differ_without_colour(demo: Config):
    async with CdcApp(demo).run_test(size=SMALL) as pilot:
        await pilot.pause()
        await pilot.press("down", "space")  # uncheck produtos
        await pilot.pause()
        tables = pilot.app.screen.query_one("#tables", TableChecklist)
        boxes = [tables.render_line(y).text[:3] for y in range(tables.option_count)]
        assert boxes == ["▐X▌", "▐ ▌", "▐X▌", "▐X▌"]
        skip = pilot.app.screen.query_one("#skip", Tick)
        assert str(skip.render()).startswith("▐ ▌")
        await pilot.press("k")
        await pilot.pause()
        assert skip.value and str(skip.render()).startswith("▐X▌")


async def test_after_a_fast_cycle_the_loop_says_it_waits_and_stops_at_once(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = make_config(tmp_path, captures=0, timer={"unit": "hours", "value": 1})
    app = CdcApp(config)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, LoopScreen))
        loop = app.screen
        await pilot.press("s")
        await wait_for(pilot, lambda: loop.cycles == 1 and not loop.capturing, timeout=40)
        await pilot.pause(0.6)  # a countdown tick: it must not take the wait for a new cycle
        countdown = text_of(loop.query_one("#countdown", Static))
        assert countdown.startswith("○ waiting") and "capturing" not in countdown
        assert re.search(r"next cycle in (59:\d\d|1:00:00)", countdown), countdown
        await pilot.press("s")
        await wait_for(pilot, lambda: not loop.running, timeout=10)  # a wait ends at once
        assert loop.cycles == 1
        log = [line.plain for line in app.log_history]
    assert any("next cycle at" in line for line in log)
    stopping = [line for line in log if "stopping the timed loop" in line]
    assert len(stopping) == 1 and "after the current cycle" not in stopping[0]
    assert not [line for line in log if "Ctrl-C" in line or "SIGTERM" in line or re.search(r"\d s$", line)]


async def test_a_failed_cycle_also_ends_the_capturing_state(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = make_config(tmp_path, captures=0, timer={"unit": "hours", "value": 1})
    app = CdcApp(config)
    with State(config.data_dir).lock():  # another capture holds the data dir: the cycle fails at once
        async with app.run_test(size=SMALL) as pilot:
            await pilot.pause()
            await pilot.press("l")
            await wait_for(pilot, lambda: isinstance(app.screen, LoopScreen))
            loop = app.screen
            await pilot.press("s")
            await wait_for(pilot, lambda: loop.next_cycle is not None, timeout=20)
            await pilot.pause(0.6)
            assert loop.cycles == 0 and text_of(loop.query_one("#countdown", Static)).startswith("○ waiting")
            assert any("Another capture is running" in n.message for n in app._notifications)
            await pilot.press("s")
            await wait_for(pilot, lambda: not loop.running, timeout=10)


def test_each_sparkline_has_its_own_scale():
    runs = [{"kind": "changes", "counts": {"I": i, "U": u, "D": d}} for i, u, d in
            [(5000, 40, 1), (1000, 20, 3), (3000, 0, 2)]]
    lines = history(runs).plain.splitlines()[1:]
    sparks = {line[0]: line[2:5] for line in lines}
    assert sparks == {"I": "█▂▅", "U": "█▄ ", "D": "▃█▆"}  # D's 3 is its own maximum, not a flat ▁ under I's 5000


async def test_the_confirm_modal_shows_no_size_for_a_manifest(demo: Config):
    async with CdcApp(demo).run_test(size=(100, 30)) as pilot:
        await open_preview(pilot)
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen))
        lines = rendered(pilot.app.screen.query_one("#uploads")).splitlines()
        manifests = [line.split() for line in lines if "manifests/" in line]
        assert manifests and all(line[1:] == ["—"] for line in manifests)  # no rows, size not known yet
        assert not [line for line in lines if "last" in line.split()]


@pytest.mark.parametrize("fmt", ["delta"])
def test_the_tables_screen_shows_the_format_version_and_the_updated_columns(tmp_path: Path, monkeypatch, fmt):
    from deltalake import DeltaTable

    monkeypatch.chdir(tmp_path)
    config = make_config(tmp_path, captures=2, table_format=fmt)
    item = next(i for i in load_overview(config) if i.name == "clientes")
    text = overview_detail(item, FROZEN).plain
    version = DeltaTable(str(tmp_path / "lake" / "delta" / "clientes")).version()
    assert f"· delta version {version}" in text
    last = read_manifests(make_lake(config.lake), "clientes")[-1]
    assert item.last["run_id"] == last["run_id"] and item.last["table_format"]["version"] == version
    ranked = sorted(last["changed_columns"].items(), key=lambda item: (-item[1], item[0]))
    assert "updated columns  " + " · ".join(f"{c} {n:,}" for c, n in ranked) in text


async def test_d_switches_the_tables_detail_to_each_columns_data_quality(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = make_config(tmp_path, captures=3)
    runs = read_manifests(make_lake(config.lake), "clientes")
    async with CdcApp(config).run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        detail = pilot.app.screen.query_one("#detail", Static)
        await wait_for(pilot, lambda: "history of the last" in rendered(detail))
        await pilot.press("d")
        await pilot.pause()
        shown = rendered(detail)
        assert "history of the last" not in shown and f"trends over {len(runs)} run(s)" in shown
        for column, numbers in runs[-1]["quality"].items():  # the last manifest's numbers, one line per column
            share = 100 * numbers["nulls"] / runs[-1]["rows"]
            assert re.search(rf"^{re.escape(column[:17])}\s+NULL\s+{share:.1f}% \S+\s+distinct\s+"
                             rf"{numbers['distinct']:,} ", shown, re.MULTILINE), (column, shown)
        await pilot.press("d")
        await pilot.pause()
        assert "history of the last" in rendered(detail)


# --- the detail pane's data: a composite key, before-images in the lake ---------------------------------
VERSIONS = [  # (region, id, points, since), from a typed source (Parquet; keys are stored as text)
    [("north", 1, 10, "2025-01-01"), ("north", 2, 20, "2025-01-01"), ("south", 1, 30, "2025-01-01")],
    [("north", 1, 11, "2025-01-01"), ("north", 2, 20, "2025-02-01"), ("south", 2, 40, "2025-01-01")],
]


def write_points(folder: Path, rows: list[tuple]) -> None:
    region, ids, points, since = zip(*rows, strict=True)
    pq.write_table(pa.table({"region": region, "id": pa.array(ids, pa.int64()), "points": points,
                             "since": pa.array([date.fromisoformat(d) for d in since], pa.date32())}),
                   folder / "points.parquet")


@pytest.mark.parametrize("cdc", [{}, {"changed_columns": True, "before_image": True}])
def test_read_preview_finds_old_values_by_a_composite_key(tmp_path: Path, cdc: dict):
    (tmp_path / "source").mkdir()
    table = {"name": "points", "pk": ["region", "id"]}
    config = load_config(write_config(tmp_path, source={"type": "directory", "path": "source"}, tables=[table],
                                      cdc=cdc))
    write_points(tmp_path / "source", VERSIONS[0])
    run_once(config)
    write_points(tmp_path / "source", VERSIONS[1])
    report = run_once(config, dry_run=True).tables[0]
    assert report.status == "changes", report.error
    rows = read_preview(report, State(config.data_dir), ["region", "id"])
    assert rows.column_names[:3] == ["op", "region", "id"]
    assert "B" not in rows["op"].to_pylist() and "_cdc_changed" not in rows.column_names
    details = {(d.op, d.key): d.values for d in (row_detail(r, ["region", "id"]) for r in rows.to_pylist())}
    assert {k: [(c, value_text(o), value_text(n)) for c, o, n in v] for k, v in details.items()} == {
        ("U", ("north", "1")): [("points", "10", "11")],
        ("U", ("north", "2")): [("since", "2025-01-01", "2025-02-01")],
        ("I", ("south", "2")): [("points", "null", "40"), ("since", "null", "2025-01-01")],
        ("D", ("south", "1")): [("points", "30", "null"), ("since", "2025-01-01", "null")],
    }


def test_a_report_line_says_when_the_capture_rebased_on_the_lake_as_the_cli_does():
    line = report_line(TableReport("clientes", status="unchanged", rows=3837, rebased="20250922_060000")).plain
    assert line.endswith("3,837 rows  (rebased on the lake's run 20250922_060000)")
