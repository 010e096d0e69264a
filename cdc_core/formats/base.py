"""What every table format shares: the run it applies (`FormatRun`), the `TableFormat` protocol, its lost race."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..errors import LakeError

if TYPE_CHECKING:
    import pyarrow as pa


class CommitConflict(LakeError):
    "Another writer committed to the format table first: the run was not applied (it lost the race)."


@dataclass(frozen=True)
class FormatRun:
    """One committed run of one table, as a table format applies it.

    `snapshot` is the run's full table (Parquet); `changes` its change rows (Parquet: `op` in I/U/D, the row's
    columns, `_cdc_*` columns; D rows carry the previous row), None on the first capture. Extra `_cdc_*` columns
    and `op = "B"` rows (before-images) are ignored.
    """

    table: str
    run_id: str  # YYYYMMDD_HHMMSS, strictly increasing along the lake's history
    key: tuple[str, ...]
    snapshot: Path
    changes: Path | None
    first: bool
    history: tuple[str, ...] = ()  # the lake's committed runs before this one, oldest first: its parent is last
    token: str | None = None  # this capture's token: two writers may pick the same run id

    def follows(self, run_id: str | None) -> bool:
        """Whether a format table whose last run is `run_id` holds the state this run starts from: the parent's, or
        an older one of the lake's history when the runs since wrote nothing."""
        return run_id is not None and run_id in self.history

    def is_run(self, run_id: str | None, token: str | None) -> bool:
        """Whether a format table's last run (id, token) is this very run (a run recorded without token matches)."""
        return run_id == self.run_id and (not token or not self.token or token == self.token)


class TableFormat(Protocol):
    """A table format: applies runs idempotently and reads the table back, now or as of a run."""

    name: str

    def apply(self, run: FormatRun) -> int:
        """Apply the run (once: a second call changes nothing) and return the table's version after it."""
        ...

    def last_run(self, table: str) -> tuple[str, str | None] | None:
        """The run (id, token) whose state the table holds now; None when there is no table yet."""
        ...

    def applied_version(self, table: str, run_id: str) -> int | None:
        """The table's version holding the state after `run_id`, or None if that run is not applied."""
        ...

    def current(self, table: str) -> pa.Table:
        """The table's current state."""
        ...

    def as_of(self, table: str, run_id: str) -> pa.Table:
        """The table as it was right after run `run_id`."""
        ...


def run_number(run_id: str) -> int:
    """A run id (`YYYYMMDD_HHMMSS`) as the increasing integer a Delta app transaction records."""
    digits = run_id.replace("_", "")
    if len(digits) != 14 or not digits.isdigit():
        raise ValueError(f"run id {run_id!r} is not YYYYMMDD_HHMMSS")
    return int(digits)
