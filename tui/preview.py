"""The Preview screen: a dry run of the checked tables, one tab per table, then confirm to publish it."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar

import pyarrow as pa
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, ProgressBar, Static, TabbedContent, TabPane
from textual.worker import get_current_worker

from cdc_core.errors import CdcError
from cdc_core.monitored import run_once
from cdc_core.report import RunReport
from cdc_core.state import State

from .confirm import ConfirmScreen
from .data import held_tables, read_preview, to_publish, upload_totals
from .render import human_bytes, short_path
from .widgets import LogPane, TableDiff

log = logging.getLogger("cdc_core.tui")


def tab_id(table: str) -> str:
    """A widget id for a table's tab (table names may start with a digit; ids may not)."""
    return f"t-{table}"


class PreviewScreen(Screen[None]):
    """Fetch (or re-use the last fetch) and diff without publishing; Upload publishes exactly this preview."""

    SUB_TITLE = "Preview"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("c", "confirm", "Upload…"),
        Binding("f", "cycle_op", "Filter op"),
        Binding("slash", "search", "Search key"),
        Binding("right_square_bracket", "next_tab(1)", "Next table"),
        Binding("left_square_bracket", "next_tab(-1)", "Previous table", show=False),
    ]

    phase: reactive[str] = reactive("previewing", bindings=True)  # previewing|ready|failed|publishing|published

    def __init__(self, tables: list[str], skip_download: bool) -> None:
        super().__init__()
        self.tables, self.skip_download = tables, skip_download
        self.report: RunReport | None = None
        self.published: RunReport | None = None
        self._sent: dict[str, int] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="status")
        with TabbedContent(id="tabs"):
            for name in self.tables:
                with TabPane(name, id=tab_id(name)):
                    yield TableDiff(self.app.config.table(name), id=f"diff-{tab_id(name)}")
        with Horizontal(id="publish"):
            yield Static("publishing", id="publish-label")
            yield ProgressBar(id="publish-bar", show_eta=False)
        yield LogPane(id="log")
        yield Footer()

    def on_mount(self) -> None:
        self.watch_phase(self.phase)
        self.run_preview()

    def diff(self, table: str) -> TableDiff:
        return self.query_one(f"#diff-{tab_id(table)}", TableDiff)

    def active_diff(self) -> TableDiff | None:
        active = self.query_one(TabbedContent).active
        return self.query_one(f"#diff-{active}", TableDiff) if active else None

    # --- preview ------------------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="cycle")
    def run_preview(self) -> None:
        """The pipeline's dry run, then the change rows of each table read as Arrow (all in this thread)."""
        try:
            state = State(self.app.config.data_dir)
            pending = {name: [entry.run_id for entry in state.outbox.pending(name)] for name in self.tables}
            report = run_once(self.app.config, tables=self.tables, skip_download=self.skip_download, dry_run=True,
                              on_progress=self._progress)
            if get_current_worker().is_cancelled:  # the screen was closed while the core ran: nothing to show
                return
            config = self.app.config
            rows = {t.table: read_preview(t, state, config.table(t.table).pk) for t in report.tables}
        except CdcError as exc:
            log.error("%s", exc)
            self._to_ui(self._set_phase, "failed", str(exc))
            return
        except Exception as exc:  # a bug: show it, keep the UI alive
            log.exception("preview failed unexpectedly")
            self._to_ui(self._set_phase, "failed", f"unexpected {type(exc).__name__}: {exc}")
            return
        self._to_ui(self._show, report, rows, pending)

    def _to_ui(self, callback: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """From a worker thread: run `callback` on the UI thread, unless this screen was closed meanwhile."""
        self.app.from_worker(self._if_open, partial(callback, *args, **kwargs))

    async def _if_open(self, callback: Callable[[], Any]) -> None:
        if self in self.app.screen_stack:
            result = callback()
            if inspect.isawaitable(result):
                await result

    def _progress(self, table: str, message: str) -> None:
        line = f"{table}: {message}" if table else message
        log.info("%s", line)
        self._to_ui(self._status, Text(line, "dim"))

    async def _show(self, report: RunReport, rows: dict[str, pa.Table | None], pending: dict[str, list[str]]) -> None:
        self.report = report
        for table in report.tables:
            await self.diff(table.table).show(table, rows[table.table], pending.get(table.table, []))
        self._mark_tabs(report)
        self.phase = "ready"
        self._focus_grid()

    def _mark_tabs(self, report: RunReport) -> None:
        """Each table's tab says whether its last step failed (✗) or is held by a guard (⏸)."""
        for table in report.tables:
            mark = {"failed": " ✗", "held": " ⏸"}.get(table.status, "")
            self.query_one(TabbedContent).get_tab(tab_id(table.table)).label = Text(f"{table.table}{mark}")

    def _focus_grid(self) -> None:
        """Focus the active table's change rows, so the arrow keys scroll them at once."""
        if diff := self.active_diff():
            diff.focus_grid()

    def _set_phase(self, phase: str, message: str = "") -> None:
        self.phase = phase
        if message:
            self._status(Text(message, "red" if phase == "failed" else ""))

    def _status(self, text: Text) -> None:
        self.query_one("#status", Static).update(text)

    def watch_phase(self, phase: str) -> None:
        self.query_one("#publish").display = phase in ("publishing", "published")
        if phase == "previewing":
            fetch = "re-using the last fetch" if self.skip_download else "fetching"
            self._status(Text(f"Previewing {', '.join(self.tables)}: {fetch} and diffing, nothing is written…"))
        elif phase == "ready" and self.report is not None:
            files, size = upload_totals(self.report)
            version = f" · source version {self.report.source_version}" if self.report.source_version else ""
            self._status(Text.assemble(("Preview", "bold"), f" · run {self.report.run_id}{version} · ",
                                       (f"{files} files, {human_bytes(size)}", "bold"), " to write"))

    # --- confirm and publish ------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "confirm":
            return True if self.phase == "ready" and self.report and upload_totals(self.report)[0] else None
        if action == "back":
            return None if self.phase == "publishing" else True
        return True

    def action_confirm(self) -> None:
        if self.report is not None:
            self.app.push_screen(ConfirmScreen(self.report), self._confirmed)

    def _confirmed(self, yes: bool | str | None) -> None:
        """True: publish (held tables stay held); "accept": publish and accept the held ones; else go back."""
        if not yes:  # back to the preview: it stays sealed, so `c` can still publish exactly it
            log.info("run %s not uploaded: nothing was written; c uploads the preview, Esc leaves it",
                     self.report.run_id)
            self.notify("Nothing was written to the lake. The preview stays: c uploads it, Esc goes back to the "
                        "tables.", title="Not uploaded")
            self._focus_grid()
            return
        files, size = upload_totals(self.report)
        bar = self.query_one("#publish-bar", ProgressBar)
        bar.update(total=max(size, 1), progress=0)
        self.phase = "publishing"
        self._status(Text(f"Publishing run {self.report.run_id} to {short_path(self.report.lake)}: "
                          f"{files} files, {human_bytes(size)}…"))
        accept = list(held_tables(self.report)) if yes == "accept" else []
        if accept:
            log.info("accepting the held capture(s) of %s", ", ".join(accept))
        self.run_publish(to_publish(self.report), accept)

    @work(thread=True, exclusive=True, group="cycle")
    def run_publish(self, tables: list[str], accept_held: list[str] | None = None) -> None:
        """Publish and commit exactly the previewed change sets (sealed by the dry run): the same rows and keys;
        a held table only when it is in `accept_held` (the CLI's --accept-held)."""
        try:
            report = run_once(self.app.config, tables=tables, publish_preview=self.report.run_id,
                              accept_held=accept_held or (), on_progress=self._progress, on_transfer=self._transfer)
        except CdcError as exc:
            log.error("%s", exc)
            self._to_ui(self._set_phase, "ready", f"Not published: {exc}")
            return
        except Exception as exc:
            log.exception("publishing failed unexpectedly")
            self._to_ui(self._set_phase, "ready", f"Not published: unexpected {type(exc).__name__}")
            return
        self._to_ui(self._published, report)

    def _transfer(self, table: str, key: str, done: int, total: int) -> None:
        self._sent[key] = done
        self._to_ui(self._advance, sum(self._sent.values()))

    def _advance(self, sent: int) -> None:
        self.query_one("#publish-bar", ProgressBar).update(progress=sent)

    def _published(self, report: RunReport) -> None:
        self.published = report
        self._mark_tabs(report)  # an accepted capture is no longer held
        bar = self.query_one("#publish-bar", ProgressBar)
        bar.update(progress=bar.total)
        failed = [t.table for t in report.tables if t.status == "failed"]
        held = [t.table for t in report.tables if t.status == "held"]
        files = sum(len(t.uploads) for t in report.tables)
        planned = {u.key for t in self.report.tables if t.table not in failed for u in t.uploads}
        if missing := planned - {u.key for t in report.tables for u in t.uploads}:
            log.warning("%d previewed file(s) were not written (the outbox was published first and left nothing "
                        "more to capture): %s", len(missing), ", ".join(sorted(missing)))
        if failed or held:
            said = [f"{', '.join(failed)} failed"] * bool(failed) + [f"{', '.join(held)} held"] * bool(held)
            self.notify(f"Run {report.run_id}: {'; '.join(said)}; the other tables were published.",
                        severity="warning", markup=False)
        else:
            self.notify(f"Run {report.run_id} published: {files} files.", title="Uploaded")
        log.info("run %s published: %d files", report.run_id, files)
        self.query_one("#publish-label", Static).update("published")
        self.phase = "published"
        self._status(Text(f"Published run {report.run_id} · state committed · Esc: back to the tables",
                          "bold green"))

    # --- navigation and filters ---------------------------------------------------------------------------
    def action_back(self) -> None:
        if isinstance(self.focused, Input):  # Esc (like Enter) leaves the search box first, for the grid
            self._focus_grid()
            return
        self.app.pop_screen()

    def action_next_tab(self, step: int) -> None:
        tabs = self.query_one(TabbedContent)
        ids = [tab_id(name) for name in self.tables]
        tabs.active = ids[(ids.index(tabs.active) + step) % len(ids)]
        self.call_after_refresh(self._focus_grid)

    def action_cycle_op(self) -> None:
        if diff := self.active_diff():
            diff.cycle_op()

    def action_search(self) -> None:
        if diff := self.active_diff():
            diff.focus_search()
