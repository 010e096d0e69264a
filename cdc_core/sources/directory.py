"""A folder of `{table}.csv` (or `.csv.gz`, `.parquet`) files (also what `--skip-download` re-reads)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from ..config import TableConfig
from ..errors import SourceError
from .base import Fetch, table_file


class DirectorySource:
    """Copies `{table}.csv` (or `.csv.gz`, `.parquet`) of each configured table from a folder."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.description = f"directory {self.path}"

    def fetch(self, tables: Sequence[TableConfig], dest: Path, *, last_version: str | None = None) -> Fetch:
        if not self.path.is_dir():
            raise SourceError(f"Source folder {self.path} does not exist — fix \"source.path\" in the config")
        result = Fetch(version=None)
        for table in tables:
            src = table_file(self.path, table.name)
            if src is None:
                result.errors[table.name] = SourceError(
                    f'Table "{table.name}": {self.path / (table.name + ".csv")} does not exist — add the file '
                    "(or .csv.gz, .parquet) or remove the table from the config")
                continue
            result.files[table.name] = Path(shutil.copyfile(src, dest / src.name))
        return result
