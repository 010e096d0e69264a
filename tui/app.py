"""The cdc-tui app: holds the config, routes cdc_core's log to the log pane and notifications, starts on Tables."""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import App
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen

from cdc_core.config import Config, load_config
from cdc_core.errors import CdcError
from cdc_core.logs import redact, setup_logging

from .loop import LoopScreen
from .tables import TablesScreen
from .widgets import LogPane

LEVEL_STYLES = {logging.ERROR: "bold red", logging.WARNING: "yellow", logging.INFO: ""}


def stamp(created: float) -> str:
    """A log line's local time of day (one place, so tests can freeze it)."""
    return time.strftime("%H:%M:%S", time.localtime(created))


class LogLine(Message):
    """A log record for the log pane, posted from any thread."""

    def __init__(self, level: int, message: str, created: float) -> None:
        super().__init__()
        self.level, self.message, self.created = level, message, created


class PaneHandler(logging.Handler):
    """Sends cdc_core's log records to the app: each line to the log pane, warnings and errors as notifications."""

    def __init__(self, app: CdcApp) -> None:
        super().__init__(logging.INFO)
        self.app = app

    def emit(self, record: logging.LogRecord) -> None:
        try:
            lines = redact(self.format(record)).splitlines()  # secrets masked, as on every other output
        except Exception:  # noqa: BLE001 - logging's convention: a handler reports its failure, never raises
            self.handleError(record)
            return
        self.app.post_log(record.levelno, lines[0] if lines else "", record.created)


class CdcApp(App[None]):
    """Pick tables, preview the diff, confirm the upload, run the timed loop."""

    CSS_PATH = "app.tcss"
    TITLE = "cdc-tui"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [Binding("q", "quit", "Quit")]

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        self.log_history: deque[Text] = deque(maxlen=1000)
        self.quitting = False
        self._handler = PaneHandler(self)
        self._handler.setFormatter(logging.Formatter("%(message)s"))
        self._saved_level: int | None = None

    def get_default_screen(self) -> Screen:
        return TablesScreen()

    def on_mount(self) -> None:
        logger = logging.getLogger("cdc_core")  # other handlers' filters stay theirs (the CLI's console leaves out
        # what its summary repeats: the pane shows it)
        if logger.getEffectiveLevel() > logging.INFO:
            self._saved_level = logger.level
            logger.setLevel(logging.INFO)
        logger.addHandler(self._handler)

    def on_unmount(self) -> None:
        logger = logging.getLogger("cdc_core")
        logger.removeHandler(self._handler)
        if self._saved_level is not None:
            logger.setLevel(self._saved_level)
        for screen in self.screen_stack:
            if isinstance(screen, LoopScreen):
                screen.stop()

    def from_worker(self, callback: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run `callback` on the UI thread from a worker thread (waits for it); dropped once the app has stopped."""
        if self.is_running and self._loop is not None:
            self.call_from_thread(callback, *args, **kwargs)

    def post_log(self, level: int, message: str, created: float) -> None:
        """Add a log line from any thread, without waiting for the UI (a log call must never block a worker)."""
        if threading.get_ident() == self._thread_id:
            self._log_line(LogLine(level, message, created))
        else:
            self.post_message(LogLine(level, message, created))

    @on(LogLine)
    def _log_line(self, record: LogLine) -> None:
        level, message = record.level, record.message
        style = LEVEL_STYLES.get(level, "bold red" if level > logging.ERROR else "")
        line = Text.assemble((stamp(record.created), "dim"), " ", (message, style))
        self.log_history.append(line)
        for screen in self.screen_stack:
            for pane in screen.query(LogPane):
                pane.write(line)
        if level >= logging.WARNING:
            self.notify(message, severity="error" if level >= logging.ERROR else "warning",
                        timeout=10 if level >= logging.ERROR else 6, markup=False)

    async def action_quit(self) -> None:
        """Quit; a running timed loop is stopped first and the current cycle completes."""
        loops = [s for s in self.screen_stack if isinstance(s, LoopScreen) and s.running]
        if not loops:
            self.exit()
            return
        self.quitting = True
        for screen in loops:
            screen.stop()
        self.notify("Quitting when the current cycle completes…", title="Timed loop")


def main(argv: list[str] | None = None) -> int:
    """`cdc-tui [--config PATH]`: exit code 2 when the config is invalid."""
    parser = argparse.ArgumentParser(prog="cdc-tui", description="Preview and capture snapshot changes into the "
                                     "lake, in the terminal.")
    parser.add_argument("--config", default="config.json", help="the config file (default: config.json)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except CdcError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    setup_logging(config.data_dir, console=False)  # the rotating log file; the console would garble the screen
    CdcApp(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
