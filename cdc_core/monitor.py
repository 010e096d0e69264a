"""After a cycle: record its outcome, write the Prometheus metrics file, send the notifications.

The observer that `monitored.run_once` attaches to every cycle (CLI, timed loop, TUI, Airflow alike); the pipeline
never imports it. Dry runs do nothing here. Nothing in this module may fail a cycle: each step's problem is logged
as a warning and the cycle's report stands.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .config import Config
from .logs import redact

if TYPE_CHECKING:
    from .report import RunReport

log = logging.getLogger("cdc_core")


def after_cycle(config: Config, report: RunReport, *, quiet: bool = False) -> None:
    """Record the outcome, write the metrics file and notify, for a cycle that was not a dry run; never raises.
    `quiet`: a config that cannot run (its error is the one line a person reads) adds no note of its own."""
    if report.dry_run:
        return
    from . import metrics, notify
    from .outcome import record_outcome

    previous = {}
    try:
        previous = record_outcome(config.data_dir, report)
    except Exception as exc:  # noqa: BLE001 — nothing here may fail the cycle
        _warn("could not record the cycle's outcome in the data dir; a `recovered` notification may be missed", exc)
    if config.metrics.textfile:
        try:
            metrics.write_textfile(config, say_why_not=not quiet)
        except Exception as exc:  # noqa: BLE001 — nothing here may fail the cycle
            _warn(f"could not write {metrics.textfile_path(config)}", exc)
    try:
        notify.notify(config, report, previous)
    except Exception as exc:  # noqa: BLE001 — nothing here may fail the cycle
        _warn("could not send the notifications", exc)


def _warn(what: str, exc: Exception) -> None:
    log.warning("%s", redact(f"{what} ({type(exc).__name__}: {exc}) — the capture itself is not affected"))
