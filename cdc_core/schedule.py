"""The timed loop: a cycle on every tick of the timer (ticks at start + k·interval, so no drift).

An error in one cycle is logged and the loop waits for the next tick; a config that cannot run stops it.
SIGINT/SIGTERM ask the loop to stop, which it says at once: the current cycle finishes (its state is consistent at
every step anyway) and the loop exits with code 0. A second Ctrl-C stops at once (KeyboardInterrupt).
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections.abc import Callable

from .config import Config
from .errors import CdcError, ConfigError
from .metrics import MetricsServer
from .monitored import run_once
from .report import RunReport

log = logging.getLogger("cdc_core")


def next_tick(start: float, interval: float, now: float) -> float:
    """The first tick `start + k·interval` strictly after `now`."""
    return start + (math.floor((now - start) / interval) + 1) * interval


def run_forever(config: Config, *, tables: list[str] | None = None, skip_download: bool = False,
                on_report: Callable[[RunReport], None] | None = None, stop: threading.Event | None = None,
                on_wait: Callable[[float], None] | None = None) -> int:
    """Run cycles until SIGINT/SIGTERM (or `stop` is set); returns the exit code, 0. A config that cannot run (a
    missing extra, say), which no later tick would change, raises its `ConfigError`.

    `on_wait(seconds)` is called after each cycle with the wait until the next tick (instead of logging it), so a
    caller with its own display (the TUI) knows exactly when a cycle ends and the next one starts.
    """
    stop = stop or threading.Event()
    signals = threading.current_thread() is threading.main_thread()  # signal handlers: only the main thread
    if signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda signum, frame: _stop(stop, signum))
    interval = config.timer.seconds
    metrics = MetricsServer(config)  # /metrics while the loop runs, when "metrics.port" is set
    start = time.monotonic()
    log.info("timed loop: a cycle every %g %s%s", config.timer.value, config.timer.unit,
             "; stop with Ctrl-C or SIGTERM" if signals else "")
    while not stop.is_set():
        try:
            report = run_once(config, tables=tables, skip_download=skip_download)
            if on_report:
                on_report(report)
        except ConfigError:  # no later tick can do better (a missing extra, a bad key): the loop stops
            metrics.stop()
            raise
        except CdcError as exc:
            log.error("cycle failed: %s — the next tick tries again", exc)
        except Exception:
            log.exception("cycle failed unexpectedly — the next tick tries again")
        metrics.update()
        if stop.is_set():
            break
        wait = max(0.0, next_tick(start, interval, time.monotonic()) - time.monotonic())
        if on_wait:
            on_wait(wait)
        else:
            log.info("next cycle in %.0f s", wait)
        stop.wait(wait)
    metrics.stop()
    log.info("timed loop stopped")
    return 0


def _stop(stop: threading.Event, signum: int) -> None:
    """The first SIGINT/SIGTERM: say at once that the loop stops after the cycle in progress; a second Ctrl-C
    stops at once."""
    if stop.is_set() and signum == signal.SIGINT:
        raise KeyboardInterrupt
    stop.set()
    log.warning("stopping: the table(s) in progress finish, then the timed loop ends (Ctrl-C again to stop at once)")
