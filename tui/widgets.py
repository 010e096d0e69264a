"""Widgets shared by the screens: the log pane, the change-row grid and one table's preview pane."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

import pyarrow as pa
from rich.align import Align
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container, Horizontal, Vertical, VerticalScroll
from textual.coordinate import Coordinate
from textual.reactive import reactive
from textual.strip import Strip
from textual.widgets import Checkbox, Input, RichLog, Select, SelectionList, Static
from textual_fastdatatable import ArrowBackend, DataTable

from cdc_core.config import TableConfig
from cdc_core.report import TableReport

from .data import CHANGED, HIDDEN, OPS, filter_changes, row_detail
from .render import (
    CHANGED_STYLE,
    OP_NAMES,
    OP_STYLES,
    columns_summary,
    counts,
    detail_lines,
    detail_title,
    human_bytes,
    value_text,
)

OP_CHOICES = [("all ops", "")] + [(f"{op} {OP_NAMES[op]}", op) for op in OPS]


class LogPane(RichLog):
    """The app's log lines (cdc_core's logger and the TUI's own messages); replays the history when mounted."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(wrap=True, markup=False, max_lines=1000, **kwargs)
        self.border_title = "log"

    def on_mount(self) -> None:
        for line in self.app.log_history:
            self.write(line)


CHECKED, UNCHECKED = "X", " "  # inside the box: a checked box differs from an empty one without colour too


class TableChecklist(SelectionList[str]):
    """A SelectionList whose boxes show `X` only when checked (Textual draws `X` in both, told apart by colour),
    and whose footer entry says how to tick a table."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("space,enter", "select", "Tick", key_display="Space/Enter")]

    def render_line(self, y: int) -> Strip:
        line = super().render_line(y)
        index = self.scroll_offset.y + y
        if index >= self.option_count or self.get_option_at_index(index).value in self.selected:
            return line
        segments = list(line)
        if len(segments) > 1 and segments[1].text == CHECKED:  # [left edge, inner, right edge, " ", prompt…]
            segments[1] = segments[1]._replace(text=UNCHECKED)
        return Strip(segments, line.cell_length)


class Tick(Checkbox):
    """A Checkbox whose box shows `X` only when it is on."""

    @property
    def BUTTON_INNER(self) -> str:  # Textual reads this class attribute: here it follows the value
        return CHECKED if self.value else UNCHECKED


class ChangeTable(DataTable):
    """Change rows straight from Arrow: only the visible cells are rendered, so large change sets scroll smoothly.

    The first `pinned` columns (op and the key) stay in view while scrolling right; `changed` (one list of column
    names per row) marks the changed cells of U rows.
    """

    def __init__(self, rows: pa.Table, *, ops: bool = True, pinned: int = 0, changed: pa.ChunkedArray | None = None,
                 **kwargs: Any) -> None:
        super().__init__(backend=ArrowBackend(rows), render_markup=False, zebra_stripes=True,
                         max_column_content_width=40, fixed_columns=pinned, **kwargs)
        self.ops = ops
        self._changed = changed
        self._index = {name: i for i, name in enumerate(rows.column_names)}
        self._marks: dict[int, frozenset[int]] = {}

    def changed_at(self, row: int) -> frozenset[int]:
        """The indexes of the columns a row changed (empty but for U rows)."""
        if self._changed is None:
            return frozenset()
        if (marks := self._marks.get(row)) is None:
            names = self._changed[row].as_py() or []
            marks = self._marks[row] = frozenset(self._index[n] for n in names if n in self._index)
        return marks

    def get_cell_at(self, coordinate: Coordinate) -> Any:
        """A cell's value; `op` comes coloured by its op, a changed cell bold and underlined."""
        value = super().get_cell_at(coordinate)
        if self.ops and coordinate.column == 0 and value in OP_STYLES:
            return Text(value, style=OP_STYLES[value])
        if coordinate.column in self.changed_at(coordinate.row):
            text = Text(value_text(value), style=CHANGED_STYLE)  # marked, and only the value: not its padding
            numeric = isinstance(value, int | float | Decimal) and not isinstance(value, bool)
            return Align(text, align="right") if numeric else text
        return value


class RowPane(VerticalScroll):
    """The highlighted row in a few lines: each changed column as `old → new` (scrolls when there are more)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.can_focus = True  # tab into it to scroll a long row with the arrow keys

    def compose(self) -> ComposeResult:
        yield Static("", classes="lines")

    def show(self, title: Text | str, lines: Text | str) -> None:
        self.border_title = title
        self.query_one(".lines", Static).update(lines)
        self.scroll_home(animate=False)


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
        yield Static("", classes="columns")
        yield Static("", classes="warnings")
        with Horizontal(classes="filters"):
            yield Select(OP_CHOICES, value="", allow_blank=False, compact=True, disabled=True, classes="op")
            yield Input(placeholder=f"search {', '.join(self.table.pk)}…", compact=True, disabled=True,
                        classes="search")
            yield Static("", classes="shown")
        yield Container(classes="grid")
        yield RowPane(classes="detail")

    async def show(self, report: TableReport, rows: pa.Table | None, pending: list[str] | None = None) -> None:
        """Render a table's dry-run report, its rows and its warnings (`pending`: outbox runs published first)."""
        self.report, self.rows = report, rows
        self.query_one(".counts", Static).update(self._headline(report))
        summary = self.query_one(".columns", Static)
        summary.update(columns_summary(report.column_counts) if report.column_counts else "")
        summary.display = bool(report.column_counts) and report.status != "failed"
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
        if report.status == "held":
            text.append(f"{report.error}\n", "bold yellow").append("c, then a: upload it anyway\n", "yellow")
        if report.status in ("changes", "held") and report.counts:
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

    @on(Input.Submitted)
    def _search_done(self, event: Input.Submitted) -> None:
        """Enter leaves the search box (the filter stays): the keys move the grid and the tabs again."""
        event.stop()
        self.focus_grid()

    def focus_grid(self) -> None:
        if grids := self.query(ChangeTable):
            grids.first().focus()
        else:
            self.screen.set_focus(None)

    @on(DataTable.CellHighlighted)
    def _row_highlighted(self, event: DataTable.CellHighlighted) -> None:
        self.show_row(event.coordinate.row)

    def show_row(self, index: int) -> None:
        """Show row `index` of the grid in the detail pane (hidden when the grid has no rows)."""
        pane = self.query_one(RowPane)
        if self.shown is None or not 0 <= index < self.shown.num_rows:
            pane.display = False
            return
        detail = row_detail(self.shown.slice(index, 1).to_pylist()[0], self.table.pk)
        columns = len([c for c in self.shown.column_names if c not in (*self.table.pk, "op", *HIDDEN)])
        pane.display = True
        pane.show(detail_title(detail, columns), detail_lines(detail))

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
            self.show_row(0)
            if self.report.status != "failed":
                await grid.mount(Static(self._no_rows(self.report), classes="empty"))
            return
        self.shown = filter_changes(self.rows, self.op if self.has_ops else "", self.search, self.table.pk)
        self.query_one(".shown", Static).update(f"{self.shown.num_rows:,} of {self.rows.num_rows:,} rows")
        pinned = len(self.table.pk) + (1 if self.has_ops else 0)  # read_preview puts op and the key first
        visible = self.shown.drop_columns([c for c in HIDDEN if c in self.shown.column_names])
        changed = self.shown[CHANGED] if CHANGED in self.shown.column_names else None
        table = ChangeTable(visible, ops=self.has_ops, pinned=pinned, changed=changed)
        await grid.mount(table)
        self.show_row(0)
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
