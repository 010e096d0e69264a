"""The Timed loop screen: cdc_core's `run_forever` in a thread, a countdown to the next tick, a graceful stop."""

from __future__ import annotations

import logging
import threading
import time
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from cdc_core.errors import ConfigError
from cdc_core.report import RunReport
from cdc_core.schedule import run_forever

from .render import report_line, short_path
from .widgets import LogPane

log = logging.getLogger("cdc_core.tui")


def clock(seconds: float) -> str:
    """3725 → '1:02:05'; 65 → '01:05'."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


class LoopScreen(Screen[None]):
    """Start and stop the timed loop over the checked tables; every cycle captures and publishes."""

    SUB_TITLE = "Timed loop"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "toggle", "Start/stop"),
        Binding("escape", "back", "Back"),
    ]

    running: reactive[bool] = reactive(False, bindings=True)
    stopping: reactive[bool] = reactive(False)
    capturing: reactive[bool] = reactive(False)  # a cycle runs now (else the loop waits for the next tick)
    remaining: reactive[float] = reactive(0.0)  # seconds until the next cycle, while waiting
    cycles: reactive[int] = reactive(0)

    def __init__(self, tables: list[str], skip_download: bool = False) -> None:
        super().__init__()
        self.tables, self.skip_download = tables, skip_download
        self.stop_event: threading.Event | None = None
        self.cycle_started = 0.0  # monotonic time the current cycle started
        self.next_cycle: float | None = None  # monotonic time of the next tick, told by the loop when it waits
        self.last: RunReport | None = None

    def compose(self) -> ComposeResult:
        timer, lake = self.app.config.timer, short_path(self.app.config.lake.url)
        yield Header()
        yield Static(Text.assemble(("every ", "dim"), (f"{timer.value:g} {timer.unit}", "bold"),
                                   ("  tables ", "dim"), ", ".join(self.tables), ("  →  ", "dim"), lake),
                     id="loop-info")
        yield Static("", id="countdown")
        yield Static(Text("No cycle yet.", "dim"), id="summary")
        yield LogPane(id="log")
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(0.5, self._tick)
        self._render_countdown()

    def on_unmount(self) -> None:
        """Leaving the app (or the screen) ends the loop after its current cycle: its thread never outlives us."""
        if self.stop_event is not None:
            self.stop_event.set()

    # --- start / stop -------------------------------------------------------------------------------------
    def action_toggle(self) -> None:
        if self.running:
            self.stop()
        else:
            self.start()

    def start(self) -> None:
        self.stop_event, self.cycle_started, self.next_cycle = threading.Event(), time.monotonic(), None
        self.cycles, self.capturing, self.running = 0, True, True
        log.info("timed loop started: %s (s stops it)", ", ".join(self.tables))
        self.run_loop(self.stop_event)

    def stop(self) -> None:
        """Ask the loop to stop: a running cycle completes first, a wait ends at once."""
        if self.stop_event is not None and self.running and not self.stopping:
            self.stop_event.set()
            self.stopping = True
            log.info("stopping the timed loop%s", " after the current cycle" if self.capturing else "")

    @work(thread=True, exclusive=True, group="loop")
    def run_loop(self, stop: threading.Event) -> None:
        """`run_forever` until `stop` is set; each report and each wait go to the UI thread."""
        app = self.app  # held: once the app has exited, `self.app` cannot be looked up from this thread
        try:
            run_forever(app.config, tables=self.tables, skip_download=self.skip_download, stop=stop,
                        on_report=lambda report: app.from_worker(self._reported, report),
                        on_wait=lambda seconds: app.from_worker(self._waiting, time.monotonic() + seconds))
        except ConfigError as exc:  # a config no tick can run (a missing extra): said once, the loop stops
            log.error("the timed loop stopped: %s", exc)
        except Exception:  # run_forever logs cycle errors itself; this is a bug in the loop
            log.exception("the timed loop stopped unexpectedly")
        finally:
            app.from_worker(self._stopped)

    def _reported(self, report: RunReport) -> None:
        self.last = report
        self.cycles += 1
        seconds = (report.finished_at - report.started_at).total_seconds() if report.finished_at else 0
        text = Text.assemble(("Last cycle ", "bold"), f"run {report.run_id}",
                             f" · source version {report.source_version}" if report.source_version else "",
                             f" · {seconds:.0f} s\n")
        for table in report.tables:
            text.append_text(report_line(table)).append("\n")
        text.rstrip()
        self.query_one("#summary", Static).update(text)

    def _waiting(self, until: float) -> None:
        """The cycle ended (with a report or an error): the loop waits until `until` (monotonic) for the next."""
        self.next_cycle, self.capturing = until, False
        self.remaining = until - time.monotonic()
        if not self.stopping:
            at = time.strftime("%H:%M:%S", time.localtime(time.time() + self.remaining))
            log.info("next cycle at %s (in %s)", at, clock(self.remaining))

    def _stopped(self) -> None:
        self.running = self.stopping = self.capturing = False
        self.next_cycle = None
        self.notify(f"Timed loop stopped after {self.cycles} cycle(s).", title="Loop")
        if getattr(self.app, "quitting", False):
            self.app.exit()

    # --- countdown ----------------------------------------------------------------------------------------
    def _tick(self) -> None:
        if not self.running:
            return
        now = time.monotonic()
        if not self.capturing and self.next_cycle is not None and now >= self.next_cycle and not self.stopping:
            self.capturing, self.cycle_started = True, self.next_cycle  # the wait is over: the loop runs a cycle
        self.remaining = (self.next_cycle or now) - now
        self._render_countdown()  # the elapsed time of a running cycle moves too

    def watch_running(self) -> None:
        self._render_countdown()

    def watch_stopping(self) -> None:
        self._render_countdown()

    def watch_capturing(self) -> None:
        self._render_countdown()

    def watch_remaining(self) -> None:
        self._render_countdown()

    def watch_cycles(self) -> None:
        self._render_countdown()

    def _render_countdown(self) -> None:
        if not self.is_mounted:
            return
        if not self.running:
            text = Text.assemble(("Stopped", "bold"), f" · {self.cycles} cycle(s) run · press s to start")
        elif self.stopping:
            text = Text("Stopping: the current cycle completes, then the loop ends…" if self.capturing
                        else "Stopping…", "bold yellow")
        elif self.capturing:
            text = Text.assemble(("● capturing", "bold green"), f"   cycle {self.cycles + 1} for ",
                                 (clock(time.monotonic() - self.cycle_started), "bold"),
                                 f"   cycles completed {self.cycles}   s: stop after it")
        else:
            text = Text.assemble(("○ waiting", "bold"), "   next cycle in ", (clock(self.remaining), "bold"),
                                 f"   cycles completed {self.cycles}   s: stop")
        self.query_one("#countdown", Static).update(text)

    def action_back(self) -> None:
        if self.running:
            self.notify("The loop is running: press s to stop it first.", severity="warning")
            return
        self.app.pop_screen()
