"""What every table of one capture cycle shares: what the run is, what it starts from, where it reads and
writes, and how it reports (the callbacks a face passes in)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from .commit import Transfer
from .config import Config
from .engines import Engine
from .errors import CdcError
from .formats import TableFormat
from .lake import Lake
from .sources import Fetch
from .state import State

Progress = Callable[[str, str], None]  # (table or "", message)


@dataclass(frozen=True)
class Run:
    """What the run is: its config, its id and start, and what it may do."""

    config: Config
    id: str
    started: datetime
    dry_run: bool = False
    publish: bool = False  # publishing the previews of the dry run `id`: nothing is fetched or diffed
    accept_held: frozenset[str] = frozenset()  # the tables whose held capture a person accepted


@dataclass(frozen=True)
class Inputs:
    """What every table starts from: the fetch, and each table's head in the lake."""

    fetched: Fetch
    heads: dict[str, dict | None] = field(default_factory=dict)
    head_errors: dict[str, CdcError] = field(default_factory=dict)  # the tables whose head could not be read
    source_error: Exception | None = None  # the one error of a source that failed as a whole


@dataclass(frozen=True)
class Stores:
    """Where the run reads and writes (the data dir, the lake, its table format) and the engine in between."""

    state: State
    lake: Lake
    engine: Engine
    table_format: TableFormat | None = None


@dataclass(frozen=True)
class Listeners:
    """How the run reports as it goes: the callbacks a face passes in."""

    progress: Progress
    transfer: Transfer | None = None


@dataclass(frozen=True)
class Cycle:
    """What every table of one cycle shares."""

    run: Run
    inputs: Inputs
    stores: Stores
    listeners: Listeners
