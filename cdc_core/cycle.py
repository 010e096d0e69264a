"""What every table of one capture cycle shares, and the callbacks a face passes in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from .config import Config
from .engines import Engine
from .errors import CdcError
from .formats import TableFormat
from .lake import Lake
from .sources import Fetch
from .state import State

Progress = Callable[[str, str], None]  # (table or "", message)
Transfer = Callable[[str, str, int, int], None]  # (table, key, bytes done, bytes in all)


@dataclass
@dataclass
class Cycle:
    """What every table of one cycle shares."""

    config: Config
    state: State
    lake: Lake
    fetched: Fetch
    run_id: str
    started: datetime
    dry_run: bool
    publish: bool
    progress: Progress
    transfer: Transfer | None
    heads: dict[str, dict | None] = field(default_factory=dict)
    head_errors: dict[str, CdcError] = field(default_factory=dict)
    table_format: TableFormat | None = None
    engine: Engine | None = None
    accept_held: frozenset[str] = frozenset()
    source_error: Exception | None = None  # the one error of a source that failed as a whole
