"""The Tables screen: every configured table with a checkbox, its last capture, outbox and recent history."""

from __future__ import annotations

import logging
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, SelectionList, Static
from textual.widgets.selection_list import Selection
from textual.worker import get_current_worker

from cdc_core.errors import CdcError
from cdc_core.sources import make_source

from . import data
from .data import TableOverview, load_overview
from .loop import LoopScreen
from .preview import PreviewScreen
from .render import overview_detail, overview_header, overview_line, short_path
from .widgets import LogPane, TableChecklist, Tick

log = logging.getLogger("cdc_core.tui")


class TablesScreen(Screen[None]):
    """Pick the tables to preview or to run in the timed loop."""

    SUB_TITLE = "Tables"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "preview", "Preview"),
        Binding("a", "toggle_all", "All"),
        Binding("d", "toggle_quality", "Quality"),
        Binding("k", "toggle_skip", "Skip fetch"),
        Binding("l", "loop", "Loop"),
        Binding("r", "refresh", "Refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[str, TableOverview] = {}
        self.quality = False  # the detail shows the I/U/D history (False) or the data quality per column (True)

    def compose(self) -> ComposeResult:
        config = self.app.config
        yield Header()
        yield Static(Text.assemble(("source ", "dim"), (make_source(config.source).description, "bold"),
                                   ("  →  lake ", "dim"), (short_path(config.lake.url), "bold")), id="where")
        yield Static(overview_header(), id="columns")
        yield TableChecklist(*(Selection(Text(t.name, "bold"), t.name, True, id=t.name) for t in config.tables),
                             id="tables")
        with VerticalScroll(id="detail-box"):  # the quality of a wide table scrolls (Tab to it, then ↑↓)
            yield Static("", id="detail")
        yield Tick("Skip download: preview from the last fetch", id="skip", compact=True)
        yield LogPane(id="log")
        yield Footer(compact=True)  # at 80 columns every key fits, Space/Enter and d included

    def on_mount(self) -> None:
        self.query_one("#tables", SelectionList).focus()
        self.set_interval(30, lambda: self._show(list(self.items.values())))  # keep "3 min ago" current

    def on_screen_resume(self) -> None:
        self.refresh_overview()

    @property
    def checked(self) -> list[str]:
        """The checked tables, in config order."""
        selected = set(self.query_one("#tables", SelectionList).selected)
        return [name for name in self.app.config.table_names if name in selected]

    @work(thread=True, exclusive=True, group="overview")
    def refresh_overview(self) -> None:
        """Read the local state and the lake's manifests (I/O: in this thread)."""
        try:
            items = load_overview(self.app.config)
        except CdcError as exc:
            log.error("%s", exc)
            return
        except Exception:
            log.exception("reading the state failed unexpectedly")
            return
        if not get_current_worker().is_cancelled:
            self.app.from_worker(self._show, items)

    def _show(self, items: list[TableOverview]) -> None:
        now = data.utcnow()
        tables = self.query_one("#tables", SelectionList)
        self.items = {item.name: item for item in items}
        for item in items:
            tables.replace_option_prompt(item.name, overview_line(item, now))
        self._show_detail()

    @on(SelectionList.SelectionHighlighted)
    def _show_detail(self) -> None:
        tables = self.query_one("#tables", SelectionList)
        index = tables.highlighted
        name = tables.get_option_at_index(index).value if index is not None else None
        item = self.items.get(name) if name else None
        self.query_one("#detail", Static).update(overview_detail(item, data.utcnow(), quality=self.quality)
                                                 if item else "")

    def action_toggle_quality(self) -> None:
        self.quality = not self.quality
        self._show_detail()

    def action_preview(self) -> None:
        if tables := self._checked_or_warn():
            skip = self.query_one("#skip", Tick).value
            self.app.push_screen(PreviewScreen(tables, skip_download=skip))

    def action_loop(self) -> None:
        if tables := self._checked_or_warn():
            self.app.push_screen(LoopScreen(tables))  # every cycle fetches: re-using one fetch would find nothing

    def _checked_or_warn(self) -> list[str]:
        if not (tables := self.checked):
            self.notify("Check at least one table (space toggles, a checks all).", severity="warning")
        return tables

    def action_toggle_all(self) -> None:
        tables = self.query_one("#tables", SelectionList)
        if len(tables.selected) == tables.option_count:
            tables.deselect_all()
        else:
            tables.select_all()

    def action_toggle_skip(self) -> None:
        self.query_one("#skip", Tick).toggle()

    def action_refresh(self) -> None:
        self.refresh_overview()
