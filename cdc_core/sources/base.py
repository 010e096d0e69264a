"""What every source shares: the `Source` protocol, the `Fetch` it returns, and the file names it delivers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..config import TableConfig
from ..errors import CdcError

FILE_SUFFIXES = (".csv", ".csv.gz", ".parquet")


def table_file(folder: Path, table: str) -> Path | None:
    """The file a folder holds for `table` (`{table}.csv`, `.csv.gz` or `.parquet`), if any."""
    return next((folder / f"{table}{s}" for s in FILE_SUFFIXES if (folder / f"{table}{s}").is_file()), None)


@dataclass
class Fetch:
    """What one fetch delivered."""

    version: str | None
    files: dict[str, Path] = field(default_factory=dict)
    errors: dict[str, CdcError] = field(default_factory=dict)
    unchanged: bool = False


class Source(Protocol):
    """Anything that can deliver `{table}.csv` (or `.csv.gz`, `.parquet`) files."""

    description: str

    def fetch(self, tables: Sequence[TableConfig], dest: Path, *, last_version: str | None) -> Fetch: ...
