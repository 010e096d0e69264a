"""A capture cycle as every face runs it: the pipeline's `run_once` with monitoring attached.

The pipeline knows nothing of outcomes, metrics files or notifications: it tells its observers each cycle's
report. The CLI, the timed loop, the TUI, the notebooks, Airflow and `cdc_core.run_once` all run this one, which
attaches `monitor` (record the outcome, write the metrics file, notify) as the observer.
"""

from __future__ import annotations

from typing import Any

from . import pipeline
from .config import Config
from .monitor import after_cycle
from .report import RunReport

__all__ = ["run_once"]


def run_once(config: Config, **options: Any) -> RunReport:
    """`pipeline.run_once(config, **options)` (same options, same report), observed by monitoring."""
    def observe(report: RunReport, quiet: bool) -> None:
        after_cycle(config, report, quiet=quiet)

    return pipeline.run_once(config, observers=(observe,), **options)
