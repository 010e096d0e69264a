"""Which runs a format table holds: the run bookkeeping Delta and Iceberg share.

Every commit of a format table (a Delta version, an Iceberg snapshot) records the run whose state it holds. The
live ones — on the table's current line, not undone by a rewind — answer what the lake asks: the table's last run,
the version holding the state right after a run (`applied_version`, `as_of`), and, before a run is applied, whether
the table holds it already (a retry), follows the lake's history (the run is applied) or holds a run the lake never
committed (undone first). `DeltaFormat` and `IcebergFormat` supply how their library opens a table, lists its live
commits and reads its rows.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ..errors import LakeError
from .base import FormatRun
from .changes import normalize

RUN_KEY = "cdc.run_id"  # in each commit's metadata (Delta) or snapshot summary (Iceberg): the run whose state it holds
TOKEN_KEY = "cdc.token"  # and that run's capture token


@dataclass(frozen=True)
class RunState:
    """A live commit of a format table: the run whose state it holds and the table's version of it (a Delta version,
    an Iceberg snapshot id); `record` is the library's own (a Delta commit's info, an Iceberg `Snapshot`)."""

    run_id: str
    token: str | None
    version: int
    record: Any


@dataclass(frozen=True)
class Standing:
    """Where a format table stands when a run is about to be applied to it."""

    last: tuple[str, str | None] | None  # the table's last run (id, token)
    version: int | None  # the version holding the run when the table holds it already (a retry), else None
    stray: bool  # it holds a run the lake never committed, undone first (a first capture rewrites it anyway)


class RunBookkeeping(ABC):
    """A table format's runs, read from its live commits; subclasses open tables and apply runs with their library.

    A table handle (`handle`) is the library's open table: a deltalake `DeltaTable`, a pyiceberg `Table`.
    """

    name: str  # as in the config: "delta"
    title: str  # in messages: "Delta"
    commit_word: str  # what one commit of the table is called: "commit", "snapshot"
    cleaned_up: str  # why a table can lack the commits of its older runs

    # --- what each library supplies ------------------------------------------------------------------------
    @abstractmethod
    def _open(self, table: str) -> Any | None:
        """The table as this writer sees it for a commit; None when there is no table yet."""

    @abstractmethod
    def _called(self, table: str) -> str:
        """How messages name the format table of `table` before it is opened."""

    @abstractmethod
    def _where(self, handle: Any) -> str:
        """How messages name an open table."""

    @abstractmethod
    def _last(self, table: str, handle: Any) -> tuple[str, str | None] | None:
        """The table's last run: its id and token (LakeError when cdc_core did not write the table)."""

    @abstractmethod
    def _applied(self, table: str, handle: Any, run_id: str) -> bool:
        """Whether the table has reached run `run_id` (its last run is that one or a later one)."""

    @abstractmethod
    def _states(self, table: str, handle: Any) -> Iterator[RunState]:
        """The table's live commits that hold a run's state, newest first."""

    @abstractmethod
    def _rows(self, table: str, handle: Any, version: int | None) -> pa.Table:
        """The table's rows at `version` (None: now), as the library reads them."""

    # --- shared --------------------------------------------------------------------------------------------
    def _existing(self, table: str) -> Any:
        handle = self._open(table)
        if handle is None:
            raise LakeError(f"There is no {self.title} table {self._called(table)} yet — it is created by the first "
                            f'capture with "table_format": "{self.name}"')
        return handle

    def _state(self, table: str, handle: Any, wanted: Callable[[str], bool]) -> RunState | None:
        """The newest live commit holding the state of a run `wanted` (by id)."""
        return next((state for state in self._states(table, handle) if wanted(state.run_id)), None)

    def _version_after(self, table: str, handle: Any, run_id: str) -> int | None:
        """The version of the last commit of a run at or before `run_id` (the state right after it), if any."""
        found = self._state(table, handle, lambda ran: ran <= run_id)
        return found.version if found else None

    def _reached(self, table: str, handle: Any, run_id: str) -> int:
        version = self._version_after(table, handle, run_id)
        if version is None:
            raise LakeError(f"The {self.title} table {self._where(handle)} has no {self.commit_word} of run {run_id} "
                            f"or earlier: the table started with a later run, or {self.cleaned_up}")
        return version

    def _standing(self, table: str, handle: Any, run: FormatRun) -> Standing:
        """Whether the table holds `run` already, and whether it holds a run the lake never committed."""
        last = self._last(table, handle)
        held = last is not None and run.is_run(*last)
        return Standing(last=last, version=self._reached(table, handle, run.run_id) if held else None,
                        stray=not held and not run.first and not run.follows(last and last[0]))

    def last_run(self, table: str) -> tuple[str, str | None] | None:
        """The run (id, token) whose state the table holds now; None when there is no table yet."""
        handle = self._open(table)
        return None if handle is None else self._last(table, handle)

    def applied_version(self, table: str, run_id: str) -> int | None:
        """The version holding the state after `run_id`; None when the table has not reached that run, or started
        after it."""
        handle = self._open(table)
        if handle is None or not self._applied(table, handle, run_id):
            return None
        return self._version_after(table, handle, run_id)

    def current(self, table: str) -> pa.Table:
        return normalize(self._rows(table, self._existing(table), None))

    def as_of(self, table: str, run_id: str) -> pa.Table:
        handle = self._existing(table)
        if not self._applied(table, handle, run_id):
            raise LakeError(f'Run {run_id} is not applied to the {self.title} table of "{table}" yet — capture it '
                            "first")
        return normalize(self._rows(table, handle, self._reached(table, handle, run_id)))
