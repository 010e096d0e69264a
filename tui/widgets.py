"""Widgets shared by the screens: the log pane, the change-row grid and one table's preview pane."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Container, Horizontal, Vertical
from textual.coordinate import Coordinate
from textual.reactive import reactive
from textual.widgets import Input, RichLog, Select, Static
from textual_fastdatatable import ArrowBackend, DataTable

from cdc_core.config import TableConfig
from cdc_core.pipeline import TableReport

from .data import OPS, filter_changes
from .render import OP_NAMES, OP_STYLES, counts, human_bytes

OP_CHOICES = [("all ops", "")] + [(f"{op} {OP_NAMES[op]}", op) for op in OPS]


class LogPane(RichLog):
    """The app's log lines (cdc_core's logger and the TUI's own messages); replays the history when mounted."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(wrap=True, markup=False, max_lines=1000, **kwargs)
        self.border_title = "log"

    def on_mount(self) -> None:
        for line in self.app.log_history:
            self.write(line)


class ChangeTable(DataTable):
    """Change rows straight from Arrow: only the visible cells are rendered, so large change sets scroll smoothly."""

    def __init__(self, rows: pa.Table, *, ops: bool = True, **kwargs: Any) -> None:
        super().__init__(backend=ArrowBackend(rows), render_markup=False, zebra_stripes=True,
                         max_column_content_width=40, **kwargs)
        self.ops = ops

    def get_cell_at(self, coordinate: Coordinate) -> Any:
        """A cell's value; in change rows the `op` column (the first) comes coloured by its op."""
        value = super().get_cell_at(coordinate)
        if self.ops and coordinate.column == 0 and value in OP_STYLES:
            return Text(value, style=OP_STYLES[value])
        return value


class TableDiff(Vertical):
    """One table's preview: counts, warnings, the filter by op and key, and the grid of change rows."""

    op: reactive[str] = reactive("")
    search: reactive[str] = reactive("")

    def __init__(self, table: TableConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.table = table
        self.report: TableReport | None = None
        self.rows: pa.Table | None = None
        self.shown: pa.Table | None = None

    def compose(self) -> ComposeResult:
        yield Static("previewing…", classes="counts")
        yield Static("", classes="warnings")
        with Horizontal(classes="filters"):
            yield Select(OP_CHOICES, value="", allow_blank=False, compact=True, disabled=True, classes="op")
            yield Input(placeholder=f"search {', '.join(self.table.pk)}…", compact=True, disabled=True,
                        classes="search")
            yield Static("", classes="shown")
        yield Container(classes="grid")

    async def show(self, report: TableReport, rows: pa.Table | None, pending: list[str] | None = None) -> None:
        """Render a table's dry-run report, its rows and its warnings (`pending`: outbox runs published first)."""
        self.report, self.rows = report, rows
        self.query_one(".counts", Static).update(self._headline(report))
        notes = [f"⚠ {w}" for w in report.warnings]
        if pending and report.status != "failed":
            notes.append(f"⧗ the outbox run(s) {', '.join(pending)} are published first; this preview diffs against "
                         "the last committed capture, so less may be written")
        warnings = self.query_one(".warnings", Static)
        warnings.update(Text("\n".join(notes), "yellow"))
        warnings.display = bool(notes)
        for widget in (self.query_one(Select), self.query_one(Input)):
            widget.disabled = rows is None
        self.query_one(".filters").display = rows is not None
        self.query_one(Select).display = self.has_ops
        await self._refresh_grid()

    @property
    def has_ops(self) -> bool:
        """Whether the rows are change rows (with `op`), not the full load of a first capture."""
        return self.report is not None and self.report.status != "full_load"

    def _headline(self, report: TableReport) -> Text:
        if report.status == "failed":
            return Text(f"FAILED: {report.error}", "bold red")
        text = Text()
        if report.status == "changes":
            text.append_text(counts(report.counts)).append("   ")
        elif report.status == "full_load":
            text.append("first capture: these rows become the full load and base (no change set)   ", "cyan")
        elif report.status == "unchanged":
            text.append("no changes since the last capture   ", "dim")
        elif report.status == "skipped":
            text.append("skipped: the source has no new version   ", "dim")
        if report.rows is not None:
            text.append(f"{report.rows:,} rows", "dim")
        if report.uploads:
            size = sum(u.bytes for u in report.uploads)
            text.append(f" · would write {len(report.uploads)} files, {human_bytes(size)}", "dim")
        return text

    def cycle_op(self) -> None:
        """Show the next op: all → I → U → D → all."""
        if self.rows is not None and self.has_ops:
            values = [value for _, value in OP_CHOICES]
            self.query_one(Select).value = values[(values.index(self.op) + 1) % len(values)]

    def focus_search(self) -> None:
        if self.rows is not None:
            self.query_one(Input).focus()

    @on(Select.Changed)
    def _op_chosen(self, event: Select.Changed) -> None:
        event.stop()
        self.op = str(event.value)

    @on(Input.Changed)
    def _search_typed(self, event: Input.Changed) -> None:
        event.stop()
        self.search = event.value.strip()

    async def watch_op(self) -> None:
        await self._refresh_grid()

    async def watch_search(self) -> None:
        await self._refresh_grid()

    async def _refresh_grid(self) -> None:
        """Filter the change rows with Arrow and mount a fresh grid on the result (the grid is read-only)."""
        if self.report is None:
            return
        grid = self.query_one(".grid", Container)
        had_focus = isinstance(self.screen.focused, ChangeTable) and self.screen.focused in grid.children
        await grid.remove_children()
        if self.rows is None:
            self.shown = None
            if self.report.status != "failed":
                await grid.mount(Static(self._no_rows(self.report), classes="empty"))
            return
        self.shown = filter_changes(self.rows, self.op if self.has_ops else "", self.search, self.table.pk)
        self.query_one(".shown", Static).update(f"{self.shown.num_rows:,} of {self.rows.num_rows:,} rows")
        table = ChangeTable(self.shown, ops=self.has_ops)
        await grid.mount(table)
        if had_focus:  # the grid is replaced, not updated: keep the keyboard on it
            table.focus()

    @staticmethod
    def _no_rows(report: TableReport) -> str:
        if report.status == "changes":
            return "The schema changed but no row did: the change set has no rows."
        extra = " (only the outbox runs above)" if report.uploads else ""
        if report.status == "unchanged":
            return f"No row changed since the last capture: nothing new is written for this table{extra}."
        if report.status == "skipped":
            return f"The source has no new version: nothing new is written{extra}."
        return "Nothing to show."
