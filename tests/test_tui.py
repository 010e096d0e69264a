"""cdc-tui: pilot tests of what a user sees and what lands in the lake, and snapshots of the main screens."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import ProgressBar, Static, TabbedContent

import cdc_core.pipeline
import cdc_core.state
import tui.app
import tui.data
from cdc_core import run_once
from cdc_core.config import Config, load_config
from cdc_core.lake import make_lake, read_manifests
from cdc_core.state import State
from tui.app import CdcApp
from tui.confirm import ConfirmScreen
from tui.data import HIDDEN
from tui.loop import LoopScreen
from tui.preview import PreviewScreen
from tui.widgets import ChangeTable

from .conftest import DEMO_TABLES, write_config

SMALL_DEMO = {"type": "demo", "seed": 7, "scale": 0.05}
FROZEN = datetime(2025, 6, 1, 6, 0, 0, tzinfo=UTC)


def make_config(folder: Path, *, captures: int = 1, **overrides) -> Config:
    """A small demo config in `folder` (one table at a time: a deterministic log), captured `captures` times."""
    config = load_config(write_config(folder, source=SMALL_DEMO, workers=1, **overrides))
    for _ in range(captures):
        run_once(config)
    return config


def lake_listing(config: Config) -> dict[str, int]:
    root = Path(config.lake.url)
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def text_of(widget: Static) -> str:
    return str(widget.content)


def rendered(widget: Static) -> str:
    """A Static's content as plain text, as a 200-column terminal shows it."""
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(widget.content)
    return console.export_text()


async def wait_for(pilot: Pilot, condition: Callable[[], bool], timeout: float = 20) -> None:
    """Let the app run until `condition` holds (workers run in threads; their results arrive as callbacks)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the app did not get there in time"
        await pilot.pause(0.05)


async def open_preview(pilot: Pilot) -> PreviewScreen:
    await pilot.pause()
    await pilot.press("p")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, PreviewScreen)
                   and pilot.app.screen.phase != "previewing")
    await pilot.pause()
    return pilot.app.screen


@pytest.fixture
def captured(tmp_path: Path, monkeypatch) -> Config:
    monkeypatch.chdir(tmp_path)
    return make_config(tmp_path)


async def test_preview_shows_the_core_dry_run_counts_and_rows(captured: Config):
    async with CdcApp(captured).run_test(size=(100, 30)) as pilot:
        screen = await open_preview(pilot)
        assert screen.phase == "ready"
        # the core's own dry run on the same fetch and the same committed state (in a thread, as the app does)
        core = await asyncio.to_thread(run_once, captured, skip_download=True, dry_run=True)
        changed = [t for t in core.tables if t.status == "changes"]
        assert changed, "the demo source moves every table one version: some table must have changes"
        for table in core.tables:
            diff = screen.diff(table.table)
            assert diff.report.status == table.status and diff.report.counts == table.counts
            headline = text_of(diff.query_one(".counts", Static))
            if table.status == "changes":
                c = table.counts
                assert f"I {c['I']:,}  U {c['U']:,}  D {c['D']:,}" in headline
                assert diff.query_one(ChangeTable).row_count == sum(c.values())
                staged = pq.read_table(table.preview / "changes.parquet")  # the change set the core staged
                shown = diff.rows.drop_columns([c for c in HIDDEN if c in diff.rows.column_names])
                assert shown.column_names[:2] == ["op", *diff.table.pk]  # op and the key first: pinned
                assert shown.equals(staged.select(shown.column_names))
                assert set(staged.column_names) - set(shown.column_names) == {"_cdc_run_id", "_cdc_captured_at"}
        table = max(changed, key=lambda t: t.counts["U"] + t.counts["D"])
        diff = screen.diff(table.table)
        screen.query_one("#tabs").active = f"t-{table.table}"
        await pilot.pause()
        for op in ("I", "U", "D"):
            await pilot.press("f")
            await pilot.pause()
            assert diff.op == op and diff.query_one(ChangeTable).row_count == table.counts[op]
        await pilot.press("f")  # back to all ops
        pk = diff.table.pk[0]
        key = diff.rows[pk][diff.rows.num_rows - 1].as_py()
        await pilot.press("slash", *key[:12])  # search by (part of) a key
        await pilot.pause()
        grid = diff.query_one(ChangeTable)
        assert diff.search == key[:12] and grid.row_count == 1
        assert grid.get_row_at(0)[diff.rows.column_names.index(pk)] == key


async def test_confirm_yes_publishes_the_preview_and_commits(captured: Config):
    state = State(captured.data_dir)
    before = {name: state.committed(name).run_id for name in captured.table_names}
    app = CdcApp(captured)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_preview(pilot)
        preview = screen.report
        planned = {u.key for t in preview.tables for u in t.uploads}
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.click("#yes")  # with the mouse
        await wait_for(pilot, lambda: screen.phase == "published")
        assert screen.query_one("#publish-bar", ProgressBar).percentage == 1
        assert any("published" in n.message for n in app._notifications)
    files = lake_listing(captured)
    assert planned and planned <= set(files)
    for table in preview.tables:
        name = table.table
        if table.status == "changes":
            assert f"cdc/{name}/{name}_{preview.run_id}.parquet" in files
            assert state.committed(name).run_id == preview.run_id > before[name]
        else:
            assert state.committed(name).run_id == before[name]
        assert state.outbox.pending(name) == []


async def test_a_held_capture_is_shown_and_published_only_when_accepted(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = make_config(tmp_path, guards={"max_change_ratio": 0.001})  # any change of 0.1 % of rows is held
    state = State(config.data_dir)
    before = {name: state.committed(name).run_id for name in config.table_names}
    app = CdcApp(config)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_preview(pilot)
        held = {t.table: t.error for t in screen.report.tables if t.status == "held"}
        assert held, "the demo moves every table: the guard must hold some"
        name = next(iter(held))
        assert "more than max_change_ratio 0.001" in held[name]
        screen.query_one("#tabs").active = f"t-{name}"
        await pilot.pause()
        def said(widget: Static) -> str:
            return " ".join(rendered(widget).split())

        assert f"{held[name]} c, then a: upload it anyway" in said(screen.diff(name).query_one(".counts", Static))
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        numbers = held[name].split(" — ")[1].split(";")[0]  # "13 rows changed of 250 (5%), more than …"
        assert f"{name}: held — {numbers} (a: upload it too)" in said(app.screen.query_one("#uploads", Static))
        assert str(screen.query_one(TabbedContent).get_tab(f"t-{name}").label) == f"{name} ⏸"
        await pilot.press("a")  # upload, accepting the held captures (the CLI's --accept-held)
        await wait_for(pilot, lambda: screen.phase == "published")
        assert str(screen.query_one(TabbedContent).get_tab(f"t-{name}").label) == name  # no longer held
    preview = screen.report
    files = lake_listing(config)
    for table in held:
        assert f"cdc/{table}/{table}_{preview.run_id}.parquet" in files
        assert state.committed(table).run_id == preview.run_id > before[table]
    assert all(t.status != "held" for t in screen.published.tables)


async def test_declining_goes_back_to_the_preview_which_still_publishes_exactly(captured: Config):
    state = State(captured.data_dir)
    before_lake = lake_listing(captured)
    before_state = {name: state.committed(name) for name in captured.table_names}
    app = CdcApp(captured)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        await pilot.press("down", "space")  # uncheck produtos: only the checked tables are previewed
        screen = await open_preview(pilot)
        preview = screen.report
        assert [t.table for t in preview.tables] == ["clientes", "transacoes", "transacao_produto"]
        sealed = {t.table: pq.read_table(t.preview / "changes.parquet") for t in preview.tables
                  if t.status == "changes"}
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")  # no: back to the preview, nothing written, nothing thrown away
        await wait_for(pilot, lambda: app.screen is screen)
        assert screen.phase == "ready" and screen.report is preview
        assert any("Nothing was written" in n.message for n in app._notifications)
        assert lake_listing(captured) == before_lake
        assert {name: state.committed(name) for name in captured.table_names} == before_state
        assert all(state.outbox.pending(name) == [] for name in captured.table_names)
        await pilot.press("c")  # changed our mind: the same preview is still there to publish
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: screen.phase == "published")
        assert screen.published.run_id == preview.run_id
    files = lake_listing(captured)
    for name, rows in sealed.items():  # exactly the rows the preview showed, under the preview's run id
        written = pq.read_table(Path(captured.lake.url) / "cdc" / name / f"{name}_{preview.run_id}.parquet")
        assert written.equals(rows)
        assert state.committed(name).run_id == preview.run_id
    assert state.committed("produtos") == before_state["produtos"]
    assert not [key for key in files if "produtos" in key and key not in before_lake]


async def test_the_timed_loop_runs_cycles_and_stops_on_request(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = make_config(tmp_path, captures=0, timer={"unit": "seconds", "value": 1})
    app = CdcApp(config)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, LoopScreen))
        loop = app.screen
        await pilot.press("s")
        await wait_for(pilot, lambda: loop.cycles >= 2, timeout=40)
        # between two cycles the countdown shows the wait (a slow cycle may be running at this very moment)
        await wait_for(pilot, lambda: "next cycle in" in text_of(loop.query_one("#countdown", Static)), timeout=20)
        await pilot.press("s")
        await wait_for(pilot, lambda: not loop.running, timeout=20)
        cycles = loop.cycles
        assert "Stopped" in text_of(loop.query_one("#countdown", Static))
        assert loop.last.run_id in text_of(loop.query_one("#summary", Static))
        await pilot.pause(1.5)  # a stopped loop starts no more cycles
        assert loop.cycles == cycles
    with_changes = read_manifests(make_lake(config.lake), "clientes")
    assert len(with_changes) >= 2 and State(config.data_dir).committed("clientes").run_id == loop.last.run_id


async def test_a_failing_table_is_notified_and_the_others_still_preview(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tables = [{**DEMO_TABLES[0], "pk": "nope"}, *DEMO_TABLES[1:]]
    config = make_config(tmp_path, tables=tables)
    app = CdcApp(config)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_preview(pilot)
        failed = screen.diff("clientes")
        assert failed.report.status == "failed" and '"nope"' in failed.report.error
        assert "FAILED" in text_of(failed.query_one(".counts", Static)) and not failed.query(ChangeTable)
        await wait_for(pilot, lambda: any('"nope"' in n.message for n in app._notifications  # posted from the
                                          if n.severity == "error"), timeout=10)  # worker's thread: it may lag
        for name in ("transacoes", "transacao_produto"):
            diff = screen.diff(name)
            assert diff.report.status == "changes"
            assert diff.query_one(ChangeTable).row_count == sum(diff.report.counts.values()) > 0
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "clientes: failed in the preview — not published" in rendered(app.screen.query_one("#uploads"))


# --- snapshots: a frozen clock, so run ids, ages and log times are the same on every run -----------------
class FrozenDatetime(datetime):
    """`datetime` whose now() is FROZEN."""

    @classmethod
    def now(cls, tz=None):
        return FROZEN if tz else FROZEN.replace(tzinfo=None)


@pytest.fixture
def frozen(tmp_path: Path, monkeypatch) -> Config:
    """Three captures at a frozen time (a full load and two change sets), shown two hours later."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cdc_core.pipeline, "datetime", FrozenDatetime)
    monkeypatch.setattr(cdc_core.state, "datetime", FrozenDatetime)
    monkeypatch.setattr(tui.data, "utcnow", lambda: FROZEN + timedelta(hours=2))
    monkeypatch.setattr(tui.app, "stamp", lambda created: "08:00:00")
    return make_config(tmp_path, captures=3)


def test_snapshot_tables_screen(frozen: Config, snap_compare):
    async def loaded(pilot: Pilot) -> None:
        await wait_for(pilot, lambda: bool(pilot.app.screen.items))
        await pilot.pause()

    assert snap_compare(CdcApp(frozen), terminal_size=(100, 30), run_before=loaded)


def test_snapshot_preview_screen(frozen: Config, snap_compare):
    async def previewed(pilot: Pilot) -> None:
        await open_preview(pilot)
        pilot.app.clear_notifications()
        await pilot.pause()

    assert snap_compare(CdcApp(frozen), terminal_size=(100, 30), run_before=previewed)


def test_snapshot_confirm_upload(frozen: Config, snap_compare):
    async def confirming(pilot: Pilot) -> None:
        await open_preview(pilot)
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen))
        pilot.app.clear_notifications()
        await pilot.pause()

    assert snap_compare(CdcApp(frozen), terminal_size=(100, 30), run_before=confirming)


# --- at 80×24: what an update changed, before saying yes ----------------------------------------------------
@pytest.mark.parametrize("op", ["U", "I", "D"])
def test_snapshot_detail_pane_80x24(frozen: Config, snap_compare, op: str):
    async def highlighted(pilot: Pilot) -> None:
        screen = await open_preview(pilot)
        for _ in range("IUD".index(op) + 1):  # f: all → I → U → D
            await pilot.press("f")
        await pilot.pause()
        await pilot.press("down")  # the second row of that op
        assert screen.diff("clientes").op == op
        pilot.app.clear_notifications()
        await pilot.pause()

    assert snap_compare(CdcApp(frozen), terminal_size=(80, 24), run_before=highlighted)


def test_snapshot_pinned_key_after_scrolling_right_80x24(frozen: Config, snap_compare):
    async def scrolled(pilot: Pilot) -> None:
        await open_preview(pilot)
        await pilot.press(*["right"] * 9)
        pilot.app.clear_notifications()
        await pilot.pause()

    assert snap_compare(CdcApp(frozen), terminal_size=(80, 24), run_before=scrolled)


def test_snapshot_tables_screen_80x24_one_unchecked(frozen: Config, snap_compare):
    async def unchecked(pilot: Pilot) -> None:
        await wait_for(pilot, lambda: bool(pilot.app.screen.items))
        await pilot.press("down", "space", "up")
        await pilot.pause()

    assert snap_compare(CdcApp(frozen), terminal_size=(80, 24), run_before=unchecked)


def test_snapshot_confirm_upload_80x24(frozen: Config, snap_compare):
    async def confirming(pilot: Pilot) -> None:
        await open_preview(pilot)
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen))
        pilot.app.clear_notifications()
        await pilot.pause()

    assert snap_compare(CdcApp(frozen), terminal_size=(80, 24), run_before=confirming)


# --- at 80×24: every column's data quality, every key named ---------------------------------------------------
async def test_at_80x24_the_quality_view_scrolls_to_every_column_and_the_footer_names_each_key(captured: Config):
    from textual.containers import VerticalScroll
    from textual.widgets._footer import FooterKey

    app = CdcApp(captured)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: bool(pilot.app.screen.items))
        await wait_for(pilot, lambda: any(k.region.width for k in pilot.app.screen.query(FooterKey)))
        await pilot.pause()
        keys = list(pilot.app.screen.query(FooterKey))
        assert all(k.region.width for k in keys)
        shown = {k.description: k.key_display or k.key for k in keys}
        assert shown["Tick"] == "Space/Enter" and shown["Quality"] == "d" and "Quit" in shown
        assert all(k.region.right <= 80 for k in keys)  # none cut off
        await pilot.press("d")
        await pilot.pause()
        box = pilot.app.screen.query_one("#detail-box", VerticalScroll)
        lines = rendered(pilot.app.screen.query_one("#detail", Static)).splitlines()
        last = max(i for i, line in enumerate(lines) if line.startswith("DtAtualizacao"))
        assert last >= box.size.height  # clientes' 9 columns do not fit at 80×24 …
        await pilot.press("tab", *["down"] * len(lines))
        await wait_for(pilot, lambda: box.scroll_y == box.max_scroll_y and box.max_scroll_y > 0)
        assert box.scroll_y <= last < box.scroll_y + box.size.height  # … and the last one can be scrolled to


def test_a_table_without_changes_lines_up_with_the_others_in_the_loop_summary():
    from cdc_core.report import TableReport
    from tui.render import report_line

    lines = [report_line(TableReport("clientes", status="changes", counts={"I": 9, "U": 50, "D": 4}, rows=1505)),
             report_line(TableReport("produtos", status="unchanged", rows=41)),
             report_line(TableReport("transacoes", status="full_load", rows=7620))]
    assert len({line.plain.index(" rows") for line in lines}) == 1, [line.plain for line in lines]


def test_snapshot_quality_view_scrolled_to_the_last_column_80x24(frozen: Config, snap_compare):
    async def scrolled(pilot: Pilot) -> None:
        await wait_for(pilot, lambda: bool(pilot.app.screen.items))
        await pilot.press("d", "tab", *["down"] * 12)
        box = pilot.app.screen.query_one("#detail-box")
        await wait_for(pilot, lambda: box.max_scroll_y > 0 and box.scroll_y == box.max_scroll_y)
        await pilot.pause()

    assert snap_compare(CdcApp(frozen), terminal_size=(80, 24), run_before=scrolled)
