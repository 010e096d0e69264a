"""The confirm-upload modal: exactly what a confirmed preview writes into the lake (keys, rows, bytes)."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Static

from cdc_core.report import RunReport

from .data import held_tables, upload_totals
from .render import STATUS, human_bytes, short_path


class ConfirmScreen(ModalScreen[bool | str]):
    """Asks before publishing a preview; dismisses with True (publish and commit), "accept" (publish, and accept the
    captures a guard held: the CLI's --accept-held) or False (back to the preview).

    Saying no writes nothing and keeps the preview: it stays sealed (and publishable) until a newer dry run.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes, upload"),
        Binding("a", "answer('accept')", "Upload and accept the held"),
        Binding("n", "answer(False)", "No, back to the preview"),
        Binding("escape", "answer(False)", "Back", show=False),
    ]

    def __init__(self, report: RunReport) -> None:
        super().__init__()
        self.report = report
        self.held = held_tables(report)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return bool(self.held) if parameters == ("accept",) else True

    def compose(self) -> ComposeResult:
        files, size = upload_totals(self.report)
        with Vertical(id="dialog"):
            yield Static(Text.assemble("Upload run ", (self.report.run_id, "bold"), " to ",
                                       (short_path(self.report.lake), "bold"), "?"), id="dialog-title")
            with VerticalScroll(id="dialog-body"):
                yield Static(self._uploads(), id="uploads")
            with Horizontal(id="dialog-foot"):
                yield Static(Text.assemble((f"{files} files, {human_bytes(size)}", "bold"),
                                           " · per table: data, manifest, full load"), id="dialog-total")
                yield Button("Yes, upload", variant="success", compact=True, id="yes")
                if self.held:
                    yield Button("Upload, accept held", variant="warning", compact=True, id="accept")
                yield Button("No, back", variant="primary", compact=True, id="no")
        yield Footer()

    def _uploads(self) -> Table:
        grid = Table(box=None, show_header=True, header_style="bold", expand=True, pad_edge=False)
        grid.add_column("key (relative to the lake)", overflow="fold", ratio=1)
        grid.add_column("rows", justify="right", no_wrap=True)
        grid.add_column("size", justify="right", no_wrap=True)
        for table in self.report.tables:
            if table.status == "failed":
                grid.add_row(Text(f"{table.table}: failed in the preview — not published", "red"), "", "")
                continue
            if table.status == "held":
                grid.add_row(Text(f"{table.table}: held — {self.held[table.table]} (a: upload it too)", "yellow"),
                             "", "")
            if not table.uploads:
                grid.add_row(Text(f"{table.table}: {STATUS.get(table.status, table.status)} — nothing written",
                                  "dim"), "", "")
                continue
            for upload in table.uploads:
                if upload.rows is None:  # the manifest: written after the data, it commits the run; not sized yet
                    grid.add_row(upload.key, "", Text("—", "dim"))
                else:
                    grid.add_row(upload.key, f"{upload.rows:,}", human_bytes(upload.bytes))
        return grid

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss("accept" if event.button.id == "accept" else event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
